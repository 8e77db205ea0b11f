/**
 * The graph-proxy cold tier (DESIGN.md §3.3): a private, encrypted S3 bucket of partition snapshots, reached
 * through the VPC's S3 gateway endpoint.
 */
import * as aws from "@pulumi/aws"
import type { StageConfig } from "./stage.ts"

export interface Storage {
  readonly snapshots: aws.s3.Bucket
}

export const storage = (config: StageConfig): Storage => {
  const snapshots = new aws.s3.Bucket("Snapshots", {
    // A throwaway stage's bucket may be removed with its objects; production's may not.
    forceDestroy: !config.database.deletionProtection,
    tags: { "tessera:stage": config.stage }
  })
  new aws.s3.BucketPublicAccessBlock("SnapshotsPrivate", {
    bucket: snapshots.id,
    blockPublicAcls: true,
    blockPublicPolicy: true,
    ignorePublicAcls: true,
    restrictPublicBuckets: true
  })
  new aws.s3.BucketServerSideEncryptionConfiguration("SnapshotsEncryption", {
    bucket: snapshots.id,
    rules: [{ applyServerSideEncryptionByDefault: { sseAlgorithm: "AES256" }, bucketKeyEnabled: true }]
  })
  return { snapshots }
}
