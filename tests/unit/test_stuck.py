from batchd.backends.base import QueueInfo
from batchd.loops.stuck import slow_reason, unplaceable_reason

QUEUE = QueueInfo("spot", max_vcpus=64, max_memory=256_000)


def test_more_than_the_largest_compute_environment_is_unplaceable():
    assert "asks for 96 vCPUs" in unplaceable_reason({"vcpus": 96, "memory": 1000}, QUEUE)
    assert "asks for 300,000 MiB" in unplaceable_reason({"vcpus": 4, "memory": 300_000}, QUEUE)
    assert unplaceable_reason({"vcpus": 4, "memory": 1000}, QUEUE) is None
    assert unplaceable_reason({"vcpus": 4}, None) is None


def test_aws_misconfiguration_reason_is_unplaceable_whatever_the_sizes():
    reason = "MISCONFIGURATION:JOB_RESOURCE_REQUIREMENT - The job resource requirement is higher"
    assert unplaceable_reason({"status_reason": reason}, None) == reason


def test_slow_compared_with_peers_needs_enough_peers():
    waits = [120.0, 180.0, 240.0, 60.0, 300.0]
    assert "RUNNABLE for 60 min" in slow_reason(3600, waits, 5.0, "spot")
    assert slow_reason(600, waits, 5.0, "spot") is None
    assert slow_reason(3600, waits[:3], 5.0, "spot") is None
