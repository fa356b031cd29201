"""What the scale-out draws and how long AWS takes: every parameter of the simulated delays (`Model`), and each
host's own draws (when its agents come up, how long its mount takes)."""

from __future__ import annotations

import math
import random
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class Model:
    """Every parameter of the draws and delays (simulated seconds)."""

    # Auto Scaling launches the burst in batches: `launch_batch` hosts every `launch_interval_s`.
    launch_batch: int = 100
    launch_interval_s: float = 1.0
    # SSM agent online after launch: agent_min_s + lognormal(median agent_median_s, sigma agent_sigma),
    # capped at agent_cap_s. An assumption: AWS documents no distribution; issue 13 and field reports say
    # "about 30 s to several minutes", 20-240 s with a long tail.
    agent_min_s: float = 20.0
    agent_median_s: float = 35.0
    agent_sigma: float = 0.9
    agent_cap_s: float = 900.0
    # ECS agent registration: agent online + Normal(mean, sd), never before launch + 1 s. An assumption: both
    # agents start at boot (ecs-init and amazon-ssm-agent are systemd units of the ECS-optimized AMI), so they
    # come up at about the same time; the result depends on it (run with --ecs-delta-mean/--ecs-delta-sd).
    ecs_delta_mean_s: float = 0.0
    ecs_delta_sd_s: float = 4.0
    # The mount's own seconds on the host (efs-utils or NFS mount, verify, fstab): uniform.
    mount_min_s: float = 2.0
    mount_max_s: float = 6.0
    # EventBridge delivery of an event AWS emitted to a matching rule's target: base + uniform(low, high).
    # An assumption: EventBridge documents no latency; about half a second is what is seen (issue 13).
    eventbridge_s: float = 0.5
    eventbridge_low_s: float = -0.2
    eventbridge_high_s: float = 0.3
    # Lambda's SQS poller picks a message up this long after it becomes visible (after its DelaySeconds,
    # https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/sqs-delay-queues.html): the
    # poller long-polls, so an assumption of uniform(low, high).
    sqs_pickup_low_s: float = 0.05
    sqs_pickup_high_s: float = 0.5
    # A failed message (partial batch response) reappears after the queue's visibility timeout
    # (https://docs.aws.amazon.com/lambda/latest/dg/services-sqs-errorhandling.html); after maxReceiveCount
    # receives it goes to the dead-letter queue (simulation/queues.py: 360 s, 5).
    sqs_visibility_s: float = 360.0
    sqs_max_receives: int = 5
    # A handler invocation: overhead + per AWS request (throttled answers included) + botocore's backoff.
    # An assumption: ~30 ms per call from Lambda to a regional AWS API.
    invocation_overhead_s: float = 0.05
    call_s: float = 0.03
    # A Lambda execution environment serves one invocation at a time; a function with none free starts a new
    # one ("For each concurrent request, Lambda provisions a separate instance of your execution
    # environment", https://docs.aws.amazon.com/lambda/latest/dg/lambda-concurrency.html), paying its init
    # (cold start). An assumption: 0.4 s (make bench measures ~0.3 s importing the app, plus the runtime's start).
    cold_start_s: float = 0.4
    # Errors of an asynchronous invocation (EventBridge targets, the schedule) are retried twice, after 1
    # and then 2 minutes (https://docs.aws.amazon.com/lambda/latest/dg/invocation-async-error-handling.html).
    async_retry_delays_s: tuple[float, ...] = (60.0, 120.0)
    # Every scheduled function of the app (the sweeper's rate(1 minute)) runs at its rate from a random phase.
    # How often the hooks' timeouts are checked (moto_gaps.expire_actions).
    expire_check_s: float = 1.0
    # The run stops when every host is decided, or at this much simulated time.
    cap_s: float = 7200.0

    def described(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "agent_online_after_launch": f"{self.agent_min_s} s + lognormal(median {self.agent_median_s} s, "
            f"sigma {self.agent_sigma}), at most {self.agent_cap_s} s",
            "ecs_registration": f"agent online + Normal({self.ecs_delta_mean_s} s, sd {self.ecs_delta_sd_s} s)",
            "mount_seconds": f"uniform({self.mount_min_s}, {self.mount_max_s})",
            "eventbridge_delivery": f"{self.eventbridge_s} s + uniform({self.eventbridge_low_s}, "
            f"{self.eventbridge_high_s})",
            "invocation": f"{self.invocation_overhead_s} s + {self.call_s} s per AWS request + botocore's backoff; "
            f"a new execution environment adds {self.cold_start_s} s",
        }


@dataclass
class HostPlan:
    """One host's draws: seconds after its launch."""

    agent_after_s: float
    ecs_after_s: float
    mount_s: float


def draw_hosts(count: int, model: Model, seed: int) -> list[HostPlan]:
    """The hosts' own draws, from their own stream: the same whatever the app does."""
    rng = random.Random(f"hosts-{seed}")
    plans = []
    for _ in range(count):
        lognormal = rng.lognormvariate(math.log(model.agent_median_s), model.agent_sigma)
        agent = min(model.agent_min_s + lognormal, model.agent_cap_s)
        ecs = max(1.0, agent + rng.gauss(model.ecs_delta_mean_s, model.ecs_delta_sd_s))
        plans.append(HostPlan(agent, ecs, rng.uniform(model.mount_min_s, model.mount_max_s)))
    return plans


def median_host(model: Model) -> HostPlan:
    """A host at the middle of every draw (the single-host figures)."""
    agent = model.agent_min_s + model.agent_median_s
    return HostPlan(agent, max(1.0, agent + model.ecs_delta_mean_s), (model.mount_min_s + model.mount_max_s) / 2)
