"""The launch decision over facts given as plain values: no AWS, no moto, no simulation.

Properties over any facts a host can present (hypothesis), then the rules one by one. The facts record what the
decision asked for, so that the laziness the flow's call counts rest on is tested too.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from chalicelib.launch.attempts import launch_attempts
from chalicelib.launch.budget import wait_budget
from chalicelib.launch.decision import (
    PENDING_WAIT,
    WARM_POOL_WAIT,
    Asked,
    Complete,
    Done,
    Failure,
    Heartbeat,
    Place,
    Send,
    Wait,
    decide_launch,
)
from chalicelib.launch.groups import Hook
from chalicelib.mount.script_result import ScriptResult
from chalicelib.mount.spec import MountConfigError, MountSpec, mount_command_parameters
from chalicelib.mount.targets import MountTargetNotReady, NoMountTarget
from chalicelib.plumbing.lifecycle_result import LifecycleResult

NOW = 1_800_000_000.0
HOOK = Hook(heartbeat_timeout=300, global_timeout=7200)
MAX_WAIT = 900
ATTEMPTS = 3
SPEC = MountSpec("fs-12345678", "/mnt/efs", None)
PARAMETERS = mount_command_parameters(SPEC, "us-east-1", "10.0.1.5")
ELSEWHERE = dict(PARAMETERS, MountTargetIp=["10.0.200.9"])
RUNNING = "InProgress"


def command(command_id: str, age: float, status: str = "Success", parameters=None, version=None) -> dict[str, Any]:
    sent = datetime.datetime.fromtimestamp(NOW - age, tz=datetime.UTC)
    made = {
        "CommandId": command_id,
        "RequestedDateTime": sent,
        "Parameters": PARAMETERS if parameters is None else parameters,
        "Status": status,
        "InstanceIds": ["i-0123456789abcdef0"],
    }
    if version is not None:
        made["DocumentVersion"] = version
    return made


@dataclass
class Facts:
    """A host's facts as plain values; `asked_for` records each fact the decision read."""

    state: str | None = PENDING_WAIT
    hook: Hook | None = HOOK
    asked: Asked = field(default_factory=lambda: Asked(SPEC, LifecycleResult.ABANDON))
    parameters: Any = field(default_factory=lambda: PARAMETERS)
    commands: list[dict[str, Any]] = field(default_factory=list)
    start: float | None = NOW - 60
    fresh_start: float | None = None  # None: as `start`
    results: dict[str, ScriptResult] = field(default_factory=dict)
    failure_now: LifecycleResult = LifecycleResult.ABANDON
    meanwhile: bool = False
    due: bool = False  # a heartbeat is due
    beaten: bool = False
    agent_online: bool = False
    confirmed: dict[str, Any] | None = None
    attempt: int = 0
    now: float = NOW
    first_mount_now: float = NOW
    asked_for: list[str] = field(default_factory=list)
    heartbeats: list[Any] = field(default_factory=list)
    heartbeat_starts: list[float | None] = field(default_factory=list)  # the start each heartbeat_due was asked with
    read_after: list[float | None] = field(default_factory=list)  # each read of the start: the moment it follows
    _read_fresh: bool = False

    def __getattribute__(self, name: str) -> Any:
        if name in ("hook", "asked", "parameters", "commands"):
            object.__getattribute__(self, "asked_for").append(name)
        return object.__getattribute__(self, name)

    @property
    def place(self) -> Place:
        self.asked_for.append("place")
        return Place("uploads", self.state, "us-east-1a")

    def started(self, fresh: bool = False, read_after: float | None = None) -> float | None:
        self.asked_for.append("started (fresh)" if fresh else "started")
        self.read_after.append(read_after)
        self._read_fresh = self._read_fresh or fresh
        return self.since()

    def since(self) -> float | None:
        if self._read_fresh and self.fresh_start is not None:
            return self.fresh_start
        return self.start

    def status(self, command: dict[str, Any]) -> str:
        self.asked_for.append("status")
        return command["Status"]

    def result(self, command: dict[str, Any]) -> ScriptResult:
        self.asked_for.append("result")
        return self.results.get(command["CommandId"], ScriptResult(command["Status"], 75))

    def failure_result_now(self) -> LifecycleResult:
        self.asked_for.append("failure_result_now")
        return self.failure_now

    def sent_meanwhile(self) -> bool:
        self.asked_for.append("sent_meanwhile")
        return self.meanwhile

    def heartbeat_due(self, started: float | None, at: float) -> bool:
        self.asked_for.append("heartbeat_due")
        self.heartbeat_starts.append(started)
        return self.due and not self.beaten


def decide(facts: Facts):
    """The step's loop: a heartbeat, then the decision again on the same facts (as launch/flow.py does)."""
    action = decide_launch(facts, "efs-automount", MAX_WAIT, ATTEMPTS)
    if isinstance(action, Heartbeat):
        facts.heartbeats.append(action)
        facts.beaten = True
        action = decide_launch(facts, "efs-automount", MAX_WAIT, ATTEMPTS)
        assert not isinstance(action, Heartbeat), "a heartbeat twice in one step"
    return action


# --- properties over any facts -----------------------------------------------------------------

statuses = st.sampled_from(["Success", "Failed", "TimedOut", "Cancelled", RUNNING, "Pending"])
kinds = st.sampled_from(["ours", "elsewhere", "other-version", "latest"])


@st.composite
def records(draw) -> list[dict[str, Any]]:
    made = []
    for index in range(draw(st.integers(0, 4))):
        kind = draw(kinds)
        made.append(
            command(
                f"c{index}",
                age=draw(st.floats(0, 3000, allow_nan=False)),
                status=draw(statuses),
                parameters=ELSEWHERE if kind == "elsewhere" else None,
                version={"other-version": "2", "latest": "$LATEST"}.get(kind),
            )
        )
    return sorted(made, key=lambda c: c["RequestedDateTime"])


@st.composite
def any_facts(draw) -> Facts:
    commands = draw(records())
    start = draw(st.one_of(st.none(), st.floats(NOW - 5000, NOW, allow_nan=False)))
    fresh = draw(st.one_of(st.none(), st.floats(NOW - 5000, NOW, allow_nan=False)))
    confirmed = draw(st.one_of(st.none(), st.sampled_from(commands))) if commands else None
    return Facts(
        state=draw(st.sampled_from([PENDING_WAIT, PENDING_WAIT, WARM_POOL_WAIT, "InService", None])),
        parameters=draw(st.sampled_from([PARAMETERS, PARAMETERS, NoMountTarget("none"), MountTargetNotReady("x")])),
        commands=commands,
        start=start,
        fresh_start=fresh,
        results={c["CommandId"]: ScriptResult(c["Status"], draw(st.sampled_from([3, 75, None]))) for c in commands},
        failure_now=draw(st.sampled_from(list(LifecycleResult))),
        meanwhile=draw(st.booleans()),
        due=draw(st.booleans()),
        agent_online=draw(st.booleans()),
        confirmed=confirmed if confirmed is None or confirmed["Status"] == "Success" else None,
        attempt=draw(st.integers(0, 20)),
    )


def this_launchs_attempts(facts: Facts, commands: list[dict[str, Any]]) -> list[dict[str, Any]]:
    since = facts.since()
    expected = facts.parameters if isinstance(facts.parameters, dict) else None
    return [] if since is None else launch_attempts(commands, since, expected)


@settings(max_examples=400, deadline=None)
@given(any_facts())
def test_a_host_is_let_in_as_mounted_only_on_a_success_of_one_of_this_launchs_own_attempts(facts):
    action = decide(facts)
    if isinstance(action, Complete) and action.mounted is not None:
        assert action.result is LifecycleResult.CONTINUE
        assert action.mounted["Status"] == "Success"
        assert action.mounted["Parameters"] == facts.parameters
        assert action.mounted.get("DocumentVersion") in (None, "", "$DEFAULT")
        recent = facts.confirmed is not None and NOW - action.mounted["RequestedDateTime"].timestamp() <= 120
        candidates = facts.commands + ([facts.confirmed] if facts.confirmed else [])
        assert recent or action.mounted in this_launchs_attempts(facts, candidates)


@settings(max_examples=400, deadline=None)
@given(any_facts())
def test_only_a_waiting_host_is_ever_decided_or_sent_a_mount(facts):
    action = decide(facts)
    if facts.state not in (PENDING_WAIT, WARM_POOL_WAIT):
        assert isinstance(action, Done)
        assert facts.asked_for == ["place"]


@settings(max_examples=400, deadline=None)
@given(any_facts())
def test_a_host_is_thrown_away_only_on_the_failure_result_of_this_moment(facts):
    action = decide(facts)
    if isinstance(action, Complete) and action.failure is not None:
        assert "failure_result_now" in facts.asked_for
        assert action.result is facts.failure_now


@settings(max_examples=400, deadline=None)
@given(any_facts())
def test_a_wait_is_decided_spent_only_on_a_start_read_afresh(facts):
    action = decide(facts)
    if isinstance(action, Complete) and action.failure is not None and action.failure.reason == "timeout":
        assert "started (fresh)" in facts.asked_for
        assert facts.fresh_start is not None or facts.start is not None
        assert NOW - facts.since() > wait_budget(HOOK, MAX_WAIT)


@settings(max_examples=400, deadline=None)
@given(any_facts())
def test_a_mount_is_sent_with_exactly_the_parameters_of_now_and_never_beside_a_running_attempt(facts):
    action = decide(facts)
    if isinstance(action, Send):
        assert action.parameters == facts.parameters
        running = [c for c in this_launchs_attempts(facts, facts.commands) if c["Status"] in (RUNNING, "Pending")]
        assert running == []


# --- the rules, one by one ---------------------------------------------------------------------


def test_a_host_gone_from_its_group_ends_its_flow_and_reads_nothing_more():
    facts = Facts(state=None)
    assert decide(facts) == Done("done: host gone", note="host is no longer in its group; its flow ends here")
    assert facts.asked_for == ["place"]


def test_a_group_without_our_hook_is_left_alone():
    facts = Facts(hook=None)
    assert isinstance(decide(facts), Done)
    assert facts.asked_for == ["place", "hook"]


def test_a_host_entering_a_warm_pool_is_let_in_without_a_mount_or_a_read_of_its_tags():
    facts = Facts(state=WARM_POOL_WAIT)
    assert decide(facts) == Complete(LifecycleResult.CONTINUE)
    assert "asked" not in facts.asked_for


def test_a_refused_tag_decides_the_host_with_the_failure_result_its_tags_allow():
    refused = MountConfigError("efs-automount:mount-path", "not under a mount root")
    action = decide(Facts(asked=Asked(None, LifecycleResult.CONTINUE, refused=refused)))
    assert isinstance(action, Complete)
    assert action.result is LifecycleResult.CONTINUE
    assert action.failure.reason == "invalid-tag" and action.failure.explain is False


def test_a_group_that_asks_for_no_mount_lets_its_host_in():
    action = decide(Facts(asked=Asked(None, LifecycleResult.ABANDON)))
    assert isinstance(action, Complete) and action.result is LifecycleResult.CONTINUE and action.note


def test_a_host_with_no_command_whose_agent_is_online_is_sent_its_mount_at_once():
    facts = Facts(agent_online=True)
    assert decide(facts) == Send(PARAMETERS)
    assert "sent_meanwhile" not in facts.asked_for


def test_a_success_confirmed_a_moment_ago_decides_without_reading_the_launch_or_the_record():
    facts = Facts(confirmed=command("c1", age=5))
    action = decide(facts)
    assert action == Complete(LifecycleResult.CONTINUE, mounted=facts.confirmed)
    assert "commands" not in facts.asked_for and "started" not in facts.asked_for


def test_a_success_of_an_earlier_launch_does_not_let_the_host_in():
    # Sent 1,000 s ago; this launch began 60 s ago (a warm pool reused the host): the mount is sent again.
    earlier = command("c1", age=1000)
    action = decide(Facts(commands=[earlier], start=NOW - 60, fresh_start=NOW - 60))
    assert action == Send(PARAMETERS)


def test_an_old_success_is_judged_on_the_launch_start_read_afresh():
    old = command("c1", age=500)
    facts = Facts(commands=[old], start=NOW - 600, fresh_start=NOW - 100)
    assert isinstance(decide(facts), Send)
    assert "started (fresh)" in facts.asked_for


def test_someone_elses_success_with_other_parameters_never_lets_the_host_in():
    for rogue in (command("c1", 5, parameters=ELSEWHERE), command("c1", 5, version="$LATEST")):
        action = decide(Facts(commands=[rogue], confirmed=rogue))
        assert isinstance(action, Send)


def test_a_running_attempt_is_waited_for_and_nothing_is_sent():
    action = decide(Facts(commands=[command("c1", 20, status=RUNNING)]))
    assert action == Wait("mount command running")


def test_a_spent_wait_cancels_this_launchs_running_attempts_and_decides_with_the_failure_result():
    running = command("c1", 20, status=RUNNING)
    action = decide(Facts(commands=[running], start=NOW - 1000, failure_now=LifecycleResult.CONTINUE))
    assert isinstance(action, Complete)
    assert action.result is LifecycleResult.CONTINUE and action.cancel == (running,)
    assert action.failure.reason == "timeout"


def test_a_wait_that_looks_spent_on_a_cached_start_but_not_afresh_goes_on():
    action = decide(Facts(commands=[command("c1", 20, status=RUNNING)], start=NOW - 1000, fresh_start=NOW - 60))
    assert isinstance(action, Wait)


def test_a_permanent_failure_decides_the_host_at_once():
    failed = command("c1", 30, status="Failed")
    action = decide(Facts(commands=[failed], results={"c1": ScriptResult("Failed", 3)}))
    assert isinstance(action, Complete) and action.failure.reason == "permanent"


def test_a_transient_failure_is_retried_after_its_backoff():
    failed = command("c1", 5, status="Failed")
    action = decide(Facts(commands=[failed], results={"c1": ScriptResult("Failed", 75)}))
    assert isinstance(action, Wait) and action.reason == "mount retry" and action.delay == 6
    retry_due = command("c1", 30, status="Failed")
    assert isinstance(decide(Facts(commands=[retry_due], results={"c1": ScriptResult("Failed", 75)})), Send)


def test_transient_failures_decide_the_host_once_its_attempts_are_spent():
    failed = [command(f"c{n}", 300 - 100 * n, status="Failed") for n in range(ATTEMPTS)]
    action = decide(Facts(commands=failed, start=NOW - 400))
    assert isinstance(action, Complete) and action.failure.reason == "transient"


def test_overlapping_sends_count_as_one_attempt():
    failed = [command("c1", 30, status="Failed"), command("c2", 28, status="Failed"), command("c3", 27, "Failed")]
    assert isinstance(decide(Facts(commands=failed)), Send)


def test_a_zone_without_a_mount_target_decides_the_host_and_a_target_not_ready_waits():
    gone = decide(Facts(parameters=NoMountTarget("no mount target in us-east-1a")))
    assert isinstance(gone, Complete) and gone.failure.reason == "no-mount-target"
    later = decide(Facts(parameters=MountTargetNotReady("creating"), attempt=1))
    assert isinstance(later, Wait) and later.reason == "mount target" and later.delay == 20


def test_a_command_another_step_sent_meanwhile_is_not_sent_again():
    action = decide(Facts(meanwhile=True))
    assert isinstance(action, Wait) and action.delay is None and action.level == "info"


@settings(max_examples=400, deadline=None)
@given(any_facts())
def test_a_host_left_waiting_is_heartbeated_when_due_and_a_decided_one_is_not(facts):
    action = decide(facts)
    if isinstance(action, (Send, Wait)) and facts.due:
        assert len(facts.heartbeats) == 1
    if facts.heartbeats:
        assert not isinstance(action, Done)


def test_a_heartbeat_comes_before_a_long_wait_and_the_send_after_it():
    facts = Facts(due=True, agent_online=True)
    assert decide(facts) == Send(PARAMETERS)
    assert facts.heartbeats == [Heartbeat(NOW - 60, NOW)]


# --- what each decision says: the action whole, with what the log and MountsFailed's Reason carry ----------------


def test_given_a_host_in_service_or_a_group_without_the_hook_when_decided_then_the_outcome_names_why():
    assert decide(Facts(state="InService")) == Done("done: host is InService")
    assert decide(Facts(hook=None)) == Done("ignored: group has no efs-automount hook")


def test_given_a_refused_tag_when_decided_then_the_failure_names_the_tag_and_why_and_explains_nothing_more():
    refused = MountConfigError("efs-automount:mount-path", "not under a mount root")
    action = decide(Facts(asked=Asked(None, LifecycleResult.ABANDON, refused=refused)))
    assert action == Complete(
        LifecycleResult.ABANDON,
        failure=Failure(
            "invalid-tag",
            "group tag is invalid; no mount command sent",
            {"tag": "efs-automount:mount-path", "reason": "not under a mount root"},
            explain=False,
        ),
    )


def test_given_a_group_without_the_file_system_tag_when_decided_then_the_note_says_the_host_is_let_in():
    assert decide(Facts(asked=Asked(None, LifecycleResult.ABANDON))) == Complete(
        LifecycleResult.CONTINUE,
        note="group has no efs-automount:file-system-id tag but uses the efs-automount hook; letting the host in",
    )


def test_given_a_permanent_failure_when_decided_then_the_failure_carries_the_scripts_status_code_and_summary():
    failed = command("c1", 30, status="Failed")
    result = ScriptResult("Failed", 3, {"message": "/mnt/efs holds someone else's data"})
    action = decide(Facts(commands=[failed], results={"c1": result}, failure_now=LifecycleResult.CONTINUE))
    assert action == Complete(
        LifecycleResult.CONTINUE,
        failure=Failure(
            "permanent",
            "mount failed for good",
            {
                "status": "Failed",
                "exit_code": 3,
                "failure": "permanent",
                "detail": "/mnt/efs holds someone else's data",
                "attempts": 1,
            },
        ),
    )


def test_given_transient_failures_when_attempts_are_spent_then_the_failure_counts_them():
    failed = [command(f"c{n}", 300 - 100 * n, status="Failed") for n in range(ATTEMPTS)]
    action = decide(Facts(commands=failed, start=NOW - 400))
    assert action.failure == Failure(
        "transient",
        "mount failed for good",
        {"status": "Failed", "exit_code": 75, "failure": "transient", "detail": "Failed", "attempts": 3},
    )


def test_given_a_transient_failure_when_its_backoff_runs_then_the_wait_says_so_with_the_exit_code():
    failed = command("c1", 5, status="Failed")
    action = decide(Facts(commands=[failed], results={"c1": ScriptResult("Failed", 75)}))
    assert action == Wait("mount retry", 6, "mount failed transiently; retrying", {"exit_code": 75, "attempts": 1})


def test_given_a_spent_wait_when_decided_then_the_failure_says_how_long_it_waited_and_what_it_cancelled():
    running = command("c1", 20, status=RUNNING)
    action = decide(Facts(commands=[running], start=NOW - 1000))
    assert action == Complete(
        LifecycleResult.ABANDON,
        cancel=(running,),
        failure=Failure(
            "timeout",
            "host waited longer than its budget; deciding with the failure result",
            {"waited_seconds": 1000, "commands_cancelled": 1},
        ),
    )


def test_given_no_mount_target_or_one_not_ready_when_decided_then_the_reason_and_zone_are_said():
    gone = decide(Facts(parameters=NoMountTarget("no mount target in us-east-1a")))
    assert gone == Complete(
        LifecycleResult.ABANDON,
        failure=Failure(
            "no-mount-target",
            "cannot mount from the host's zone; no mount command sent",
            {"reason": "no mount target in us-east-1a", "zone": "us-east-1a"},
        ),
    )
    later = decide(Facts(parameters=MountTargetNotReady("creating")))
    assert later == Wait("mount target", 10, "mount target not ready; waiting", {"reason": "creating"})


def test_given_a_command_sent_meanwhile_when_decided_then_the_wait_is_noted_at_info():
    assert decide(Facts(meanwhile=True)) == Wait(
        "mount command running",
        note="another step sent the mount command meanwhile; not sending a second",
        level="info",
    )


# --- a host whose agent is online: its first mount at once, but only when nothing else decides it ---------------


def test_given_an_online_agent_and_a_spent_wait_when_decided_then_the_host_is_decided_not_sent_a_first_mount():
    action = decide(Facts(agent_online=True, start=NOW - 1000))
    assert isinstance(action, Complete) and action.failure.reason == "timeout"


def test_given_an_online_agent_and_this_launchs_attempt_running_when_decided_then_it_is_waited_for():
    assert decide(Facts(agent_online=True, commands=[command("c1", 20, status=RUNNING)])) == Wait(
        "mount command running"
    )


def test_given_an_online_agent_and_no_mount_target_when_decided_then_nothing_is_sent():
    action = decide(Facts(agent_online=True, parameters=NoMountTarget("no mount target in us-east-1a")))
    assert isinstance(action, Complete) and action.failure.reason == "no-mount-target"


def test_given_an_online_agent_when_a_heartbeat_is_judged_due_then_it_is_judged_on_the_waits_start():
    facts = Facts(agent_online=True, due=True)
    decide(facts)
    assert facts.heartbeat_starts[0] == NOW - 60


def test_given_ssms_record_of_the_host_when_decided_then_its_start_is_read_after_its_newest_command_was_sent():
    # A relaunch through a warm pool after our newest command must show in the start the record is judged on.
    facts = Facts(commands=[command("c1", 300, status="Failed"), command("c2", 30, status="Failed")])
    decide(facts)
    assert NOW - 30 in facts.read_after


def test_given_a_transient_failure_when_its_backoff_has_just_run_out_then_the_mount_is_sent_again():
    failed = command("c1", 10, status="Failed")  # the first backoff is 10 s
    assert decide(Facts(commands=[failed], results={"c1": ScriptResult("Failed", 75)})) == Send(PARAMETERS)


# --- a success on record: which lets the host in, marked for that command -----------------------------------------


def test_given_this_launchs_success_on_ssms_record_when_decided_then_the_host_is_let_in_marked_for_that_command():
    success = command("c1", 30)
    assert decide(Facts(commands=[success])) == Complete(LifecycleResult.CONTINUE, mounted=success)


def test_given_a_confirmed_success_older_than_a_moment_when_decided_then_it_lets_the_host_in_without_the_record():
    facts = Facts(confirmed=command("c1", 200), start=NOW - 300)
    assert decide(facts) == Complete(LifecycleResult.CONTINUE, mounted=facts.confirmed)
    assert "commands" not in facts.asked_for


def test_given_a_success_no_older_than_a_warm_pool_round_trip_when_decided_then_the_start_is_not_read_afresh():
    success = command("c1", 120)  # WARM_POOL_ROUND_TRIP_SECONDS: no way back through a warm pool is that short
    facts = Facts(commands=[success], start=NOW - 300, fresh_start=NOW - 10)
    assert decide(facts) == Complete(LifecycleResult.CONTINUE, mounted=success)
    assert "started (fresh)" not in facts.asked_for


def test_given_an_old_success_the_start_read_afresh_still_counts_when_decided_then_the_host_is_let_in():
    success = command("c1", 500)
    facts = Facts(commands=[success], start=NOW - 600, fresh_start=NOW - 550)
    assert decide(facts) == Complete(LifecycleResult.CONTINUE, mounted=success)
    assert "started (fresh)" in facts.asked_for


def test_given_a_heartbeat_due_while_an_attempt_runs_when_decided_then_it_is_judged_and_made_on_the_waits_start():
    facts = Facts(due=True, commands=[command("c1", 20, status=RUNNING)])
    assert decide(facts) == Wait("mount command running")
    assert facts.heartbeats == [Heartbeat(NOW - 60, NOW)]
    assert facts.heartbeat_starts[0] == NOW - 60
