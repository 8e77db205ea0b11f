// Tessera's AWS home. `npx sst deploy --stage production` (see docs/deploy.md); every other stage name gets the
// cheap dev shape. Types: `.sst/platform/config.d.ts` after `sst install`, `infra/sst-globals.d.ts` for offline checks.
export default $config({
  app(input) {
    const production = input?.stage === "production"
    return {
      name: "tessera",
      home: "aws",
      removal: production ? "retain" : "remove",
      protect: production,
      providers: { aws: { version: "7.48.0" }, random: "4.16.6" }
    }
  },
  async run() {
    const { stageConfig } = await import("./infra/stage.ts")
    const { tessera } = await import("./infra/index.ts")
    const env = process.env
    return tessera(stageConfig($app.stage), {
      imageTag: env.TESSERA_IMAGE_TAG ?? "latest",
      domain: env.TESSERA_DOMAIN,
      hostedZoneId: env.TESSERA_HOSTED_ZONE_ID,
      certificateArn: env.TESSERA_CERTIFICATE_ARN,
      alarmEmail: env.TESSERA_ALARM_EMAIL,
      clusterSecret: {
        generation: Number(env.TESSERA_CLUSTER_SECRET_GENERATION ?? 1),
        accepted: env.TESSERA_CLUSTER_SECRET_ACCEPTED_GENERATION
          ? Number(env.TESSERA_CLUSTER_SECRET_ACCEPTED_GENERATION)
          : undefined
      }
    })
  }
})
