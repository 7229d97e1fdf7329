// An application on a hakube cluster, from its own stack: the Kubernetes provider gets the
// cluster stack's `kubeconfig` output (secret) through a StackReference, and the app is exposed
// on the load balancers' VIP through hakube's ingress frontend (a NodePort on every worker).
import * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";

const config = new pulumi.Config("app");
const cluster = new pulumi.StackReference(config.require("clusterStack"));

// secret in, secret kept: the provider's state and this stack's state hold it encrypted
const kubeconfig = cluster.requireOutput("kubeconfig") as pulumi.Output<string>;
const provider = new k8s.Provider("hakube", { kubeconfig });

const image = config.get("image") ?? "registry.k8s.io/e2e-test-images/agnhost:2.53";
const replicas = config.getNumber("replicas") ?? 2;
const nodePort = config.getNumber("nodePort") ?? 30080;
const labels = { "app.kubernetes.io/name": "hello" };

const ns = new k8s.core.v1.Namespace("hello", { metadata: { name: "hello" } }, { provider });

const deployment = new k8s.apps.v1.Deployment(
  "hello",
  {
    metadata: { namespace: ns.metadata.name, labels },
    spec: {
      replicas,
      selector: { matchLabels: labels },
      template: {
        metadata: { labels },
        spec: {
          containers: [
            {
              name: "hello",
              image,
              args: ["netexec", "--http-port=8080"],
              ports: [{ name: "http", containerPort: 8080 }],
              readinessProbe: { httpGet: { path: "/healthz", port: "http" } },
              resources: { requests: { cpu: "10m", memory: "32Mi" }, limits: { memory: "64Mi" } },
              securityContext: { runAsNonRoot: true, runAsUser: 65532, allowPrivilegeEscalation: false },
            },
          ],
        },
      },
    },
  },
  { provider },
);

const service = new k8s.core.v1.Service(
  "hello",
  {
    metadata: { namespace: ns.metadata.name, labels },
    spec: { type: "NodePort", selector: labels, ports: [{ name: "http", port: 80, targetPort: "http", nodePort }] },
  },
  { provider, dependsOn: [deployment] },
);

export const namespace = ns.metadata.name;
export const serviceName = service.metadata.name;
// hakube's ingress frontend forwards <vip>:80 to this NodePort on every worker (hakube:loadBalancer.ingress.http)
export const url = pulumi.interpolate`http://${cluster.requireOutput("vip")}/`;
