/** The lab end-to-end suite with Nginx (see suite.ts; run with `npm run test:lab`, as root). */
import { labSuite } from "./suite";

labSuite("nginx");
