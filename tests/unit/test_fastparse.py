"""The cheaper response parsing gives what botocore's own parsing gives, for AWS Batch's
responses, and only skips the walk where the model cannot change a value."""

from __future__ import annotations

import asyncio
import copy
import json

import botocore.session
from aiobotocore.parsers import AioResponseParserFactory
from aiobotocore.session import AioSession

from batchd.backends import fastparse

DETAIL = {
    "jobArn": "arn:aws:batch:us-east-1:1:job/abc", "jobName": "p-w-s1-0-a1", "jobId": "abc",
    "jobQueue": "arn:aws:batch:us-east-1:1:job-queue/q", "status": "FAILED",
    "statusReason": "Essential container in task exited", "createdAt": 1795551465750,
    "startedAt": 1795551471751, "stoppedAt": 1795551571751, "dependsOn": [],
    "jobDefinition": "arn:aws:batch:us-east-1:1:job-definition/d:3",
    "parameters": {"out": "s3://b/p/s1.json"}, "tags": {"batchd:sample": "s1"},
    "propagateTags": True, "platformCapabilities": ["EC2"],
    "attempts": [{"container": {"exitCode": 137, "reason": "OutOfMemoryError: Container "
                                "killed due to memory usage", "logStreamName": "d/default/x"},
                  "startedAt": 1795551471751, "stoppedAt": 1795551571751,
                  "statusReason": "Essential container in task exited"}],
    "container": {"image": "busybox", "command": ["echo", "hi"], "exitCode": 137,
                  "resourceRequirements": [{"type": "VCPU", "value": "1"},
                                           {"type": "MEMORY", "value": "2048"}],
                  "environment": [{"name": "A", "value": "b"}], "volumes": [],
                  "logConfiguration": {"logDriver": "awslogs",
                                       "options": {"awslogs-group": "/custom"}},
                  "logStreamName": "d/default/x", "ulimits": []},
    "timeout": {"attemptDurationSeconds": 600}, "retryStrategy": {"attempts": 1},
}


def _response(body: dict) -> dict:
    return {"status_code": 200, "headers": {"x-amzn-requestid": "r-1"},
            "body": json.dumps(body).encode()}


def _parse(parser, operation: str, body: dict) -> dict:
    model = botocore.session.get_session().get_service_model("batch")
    shape = model.operation_model(operation).output_shape
    return asyncio.run(parser.parse(_response(body), shape))


def test_every_batch_shape_is_json_native():
    model = botocore.session.get_session().get_service_model("batch")
    assert all(fastparse.json_native(model.operation_model(op).output_shape)
               for op in ("SubmitJob", "DescribeJobs", "ListJobs"))


def test_describe_jobs_parses_exactly_like_botocore():
    body = {"jobs": [DETAIL, {**DETAIL, "jobId": "def", "status": "RUNNING"}]}
    slow = _parse(AioResponseParserFactory().create_parser("rest-json"), "DescribeJobs",
                  copy.deepcopy(body))
    fast = _parse(fastparse.FastRestJSONParser(), "DescribeJobs", copy.deepcopy(body))
    assert fast == slow
    assert fast["jobs"][0]["attempts"][0]["container"]["exitCode"] == 137


def test_errors_still_parse_through_botocore():
    from botocore.awsrequest import HeadersDict
    model = botocore.session.get_session().get_service_model("batch")
    shape = model.operation_model("SubmitJob").output_shape

    def parse(parser):
        response = {"status_code": 400,
                    "headers": HeadersDict({"x-amzn-ErrorType": "ClientException"}),
                    "body": json.dumps({"message": "bad queue"}).encode()}
        return asyncio.run(parser.parse(response, shape))

    fast = parse(fastparse.FastRestJSONParser())
    assert fast == parse(AioResponseParserFactory().create_parser("rest-json"))
    assert fast["Error"] == {"Code": "ClientException", "Message": "bad queue"}


def test_shapes_with_timestamps_are_not_skipped():
    # CloudWatch Logs' DescribeLogStreams has no timestamps (epoch longs); S3 has them.
    s3 = botocore.session.get_session().get_service_model("s3")
    assert not fastparse.json_native(s3.operation_model("ListObjectsV2").output_shape)


def test_install_keeps_s3_timestamps_as_sent():
    session = AioSession()
    fastparse.install(session)
    factory = session.get_component("response_parser_factory")
    parser = factory.create_parser("rest-xml")
    model = botocore.session.get_session().get_service_model("s3")
    shape = model.operation_model("ListObjectsV2").output_shape
    body = (b'<?xml version="1.0" encoding="UTF-8"?><ListBucketResult><Name>b</Name>'
            b'<KeyCount>1</KeyCount><Contents><Key>p/s1.json</Key>'
            b'<LastModified>2026-11-24T20:00:00.000Z</LastModified><Size>3</Size>'
            b'</Contents></ListBucketResult>')
    parsed = asyncio.run(parser.parse({"status_code": 200, "headers": {}, "body": body},
                                      shape))
    assert parsed["Contents"][0]["Key"] == "p/s1.json"
    assert parsed["Contents"][0]["LastModified"] == "2026-11-24T20:00:00.000Z"
    assert isinstance(factory.create_parser("rest-json"), fastparse.FastRestJSONParser)


LISTING = (
    b'<?xml version="1.0" encoding="UTF-8"?>'
    b'<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>b</Name>'
    b'<Prefix>p/</Prefix><KeyCount>3</KeyCount><MaxKeys>3</MaxKeys><Delimiter>/</Delimiter>'
    b'<IsTruncated>true</IsTruncated><NextContinuationToken>tok</NextContinuationToken>'
    b'<EncodingType>url</EncodingType><StartAfter>p/a</StartAfter>'
    b'<Contents><Key>p/s1.json</Key><LastModified>2026-11-24T20:00:00.000Z</LastModified>'
    b'<ETag>&quot;abc&quot;</ETag><ChecksumAlgorithm>CRC32</ChecksumAlgorithm>'
    b'<ChecksumAlgorithm>SHA256</ChecksumAlgorithm><Size>3</Size>'
    b'<StorageClass>STANDARD</StorageClass><Owner><ID>o</ID><DisplayName>me</DisplayName>'
    b'</Owner><RestoreStatus><IsRestoreInProgress>false</IsRestoreInProgress>'
    b'</RestoreStatus></Contents>'
    b'<Contents><Key>p/s2.json</Key><Size>0</Size><ETag></ETag></Contents>'
    b'<CommonPrefixes><Prefix>p/d1/</Prefix></CommonPrefixes>'
    b'<CommonPrefixes><Prefix>p/d2/</Prefix></CommonPrefixes>'
    b'</ListBucketResult>')


def test_s3_listing_parses_exactly_like_botocore():
    from botocore.awsrequest import HeadersDict
    model = botocore.session.get_session().get_service_model("s3")
    shape = model.operation_model("ListObjectsV2").output_shape

    def parse(parser):
        response = {"status_code": 200, "body": LISTING,
                    "headers": HeadersDict({"x-amz-request-charged": "requester"})}
        return asyncio.run(parser.parse(response, shape))

    slow_factory = AioResponseParserFactory()
    slow_factory.set_parser_defaults(timestamp_parser=lambda v: v)
    slow = parse(slow_factory.create_parser("rest-xml"))
    fast = parse(fastparse.FastRestXMLParser(timestamp_parser=lambda v: v))
    assert fast == slow
    assert [c["Key"] for c in fast["Contents"]] == ["p/s1.json", "p/s2.json"]
    assert fast["Contents"][0]["ChecksumAlgorithm"] == ["CRC32", "SHA256"]
    assert fast["IsTruncated"] is True and fast["KeyCount"] == 3
    assert fast["RequestCharged"] == "requester"


def test_s3_errors_still_parse_through_botocore():
    from botocore.awsrequest import HeadersDict
    model = botocore.session.get_session().get_service_model("s3")
    shape = model.operation_model("ListObjectsV2").output_shape
    body = (b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>NoSuchBucket</Code>'
            b'<Message>gone</Message><BucketName>b</BucketName></Error>')

    def parse(parser):
        return asyncio.run(parser.parse({"status_code": 404, "body": body,
                                         "headers": HeadersDict({})}, shape))

    fast = parse(fastparse.FastRestXMLParser())
    assert fast == parse(AioResponseParserFactory().create_parser("rest-xml"))
    assert fast["Error"]["Code"] == "NoSuchBucket"
