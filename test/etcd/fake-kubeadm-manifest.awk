# kubeadm's etcd static pod as `kubeadm init phase etcd local` writes it (test/etcd/kubeadm.test.ts's fake kubeadm).
function unq(s) { sub(/^"/, "", s); sub(/"$/, "", s); return s }
/^imageRepository:/ { toprepo = unq($2) }
/^etcd:/ { inetcd = 1; next }
/^[^ ]/ { inetcd = 0; sec = "" }
inetcd && /^    imageRepository:/ { repo = unq($2) }
inetcd && /^    imageTag:/ { tag = unq($2) }
inetcd && /^    dataDir:/ { dd = unq($2) }
inetcd && /^    extraArgs:/ { sec = "args"; next }
inetcd && /^    extraEnvs:/ { sec = "envs"; next }
inetcd && /^    [^ -]/ { sec = "" }
sec != "" && /^      - name: / { n = unq($3); next }
sec != "" && /^        value: / {
  v = $0; sub(/^        value: /, "", v); v = unq(v)
  if (sec == "args") { if (!(n in arg)) order[++na] = n; arg[n] = v } else { en[++ne] = n; ev[ne] = v }
}
END {
  if (repo == "") repo = toprepo
  if (repo == "") repo = "registry.k8s.io"
  print "apiVersion: v1"
  print "kind: Pod"
  print "metadata:"
  print "  labels:"
  print "    component: etcd"
  print "    tier: control-plane"
  print "  name: etcd"
  print "  namespace: kube-system"
  print "spec:"
  print "  containers:"
  print "  - command:"
  print "    - etcd"
  print "    - --cert-file=/etc/kubernetes/pki/etcd/server.crt"
  print "    - --client-cert-auth=true"
  print "    - --data-dir=" dd
  print "    - --key-file=/etc/kubernetes/pki/etcd/server.key"
  print "    - --listen-metrics-urls=http://127.0.0.1:2381"
  print "    - --peer-cert-file=/etc/kubernetes/pki/etcd/peer.crt"
  print "    - --peer-client-cert-auth=true"
  print "    - --peer-key-file=/etc/kubernetes/pki/etcd/peer.key"
  print "    - --peer-trusted-ca-file=/etc/kubernetes/pki/etcd/ca.crt"
  print "    - --trusted-ca-file=/etc/kubernetes/pki/etcd/ca.crt"
  for (i = 1; i <= na; i++) print "    - --" order[i] "=" arg[order[i]]
  if (ne > 0) {
    print "    env:"
    for (i = 1; i <= ne; i++) { print "    - name: " en[i]; print "      value: " ev[i] }
  }
  print "    image: " repo "/etcd:" tag
  print "    name: etcd"
  print "  hostNetwork: true"
  print "  volumes:"
  print "  - hostPath:"
  print "      path: " dd
  print "      type: DirectoryOrCreate"
  print "    name: etcd-data"
}
