"""Upload of a compiled artifact to S3 with SSE-KMS, checked against moto."""

from __future__ import annotations

import json

import boto3

from workloads.compilation.compile import main


def test_upload_puts_every_file_with_sse_kms(aws, tiny_bert_dir, tmp_path, capsys):
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket="aiinfra-dev-models")
    key_arn = boto3.client("kms", region_name="us-east-1").create_key()["KeyMetadata"]["Arn"]
    code = main(["--model-dir", str(tiny_bert_dir), "--seq-len", "8", "--out", str(tmp_path / "out"),
                 "--upload", "s3://aiinfra-dev-models/tiny/v1/", "--kms-key-id", key_arn])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    summary = json.loads(captured.out)
    listed = s3.list_objects_v2(Bucket="aiinfra-dev-models", Prefix="tiny/v1/")["Contents"]
    keys = sorted(o["Key"] for o in listed)
    local = sorted(f"tiny/v1/{p.name}" for p in (tmp_path / "out").iterdir())
    assert keys == local and "tiny/v1/manifest.json" in keys and "tiny/v1/model.pt" in keys
    assert summary["uploaded"][-1] == "s3://aiinfra-dev-models/tiny/v1/manifest.json", "manifest goes last"
    for key in keys:
        head = s3.head_object(Bucket="aiinfra-dev-models", Key=key)
        assert head["ServerSideEncryption"] == "aws:kms"
        assert head["SSEKMSKeyId"] == key_arn
    manifest = json.loads(s3.get_object(Bucket="aiinfra-dev-models", Key="tiny/v1/manifest.json")["Body"].read())
    assert manifest["target"] == "cpu" and manifest["numeric_check"]["passed"] is True
