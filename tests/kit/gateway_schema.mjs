// Validates Gateway API objects (JSON array on stdin) against the Gateway API's own JSON schemas,
// as packaged by @kubernetes-models/gateway-api (the kit installs it under target/kit/npm/ and
// runs this file from there). Prints one line per object: "ok NAME" or "invalid NAME: why".
import { Gateway } from "@kubernetes-models/gateway-api/gateway.networking.k8s.io/v1/Gateway";
import { readFileSync } from "node:fs";

const models = { "gateway.networking.k8s.io/v1 Gateway": Gateway };
let invalid = 0;
for (const doc of JSON.parse(readFileSync(0, "utf8"))) {
  const Model = models[`${doc.apiVersion} ${doc.kind}`];
  try {
    if (!Model) throw new Error(`no schema for ${doc.apiVersion} ${doc.kind}`);
    new Model(doc).validate();
    console.log(`ok ${doc.metadata.name}`);
  } catch (e) {
    invalid++;
    console.log(`invalid ${doc.metadata.name}: ${e.message}`);
  }
}
process.exit(invalid ? 1 : 0);
