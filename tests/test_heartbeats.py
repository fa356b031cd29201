"""While a host waits, every step that runs records a heartbeat when one is due (CONTRACT: "from whichever
step runs"), so a hook whose heartbeat timeout is 120 s or more never expires while the app works on it:
not while the app waits for the host's SSM agent, whatever the sweeper's phase.

Reproductions of the second review (issue 18, finding 6)."""

from __future__ import annotations

from simulation import moto_gaps
from simulation.landscape import register_container_instance
from tests.conftest import SHORTEST_HOOK, deliver_outbox


def test_a_registration_before_the_agent_heartbeats_when_one_is_due(land, bus, clock, short_hook):
    instance_id = short_hook()
    deliver_outbox(bus)  # the launch: the SSM agent is not online yet
    clock.advance(70)
    register_container_instance(land, instance_id)  # ECS registers first; the SSM agent is slow today
    outcomes = [o for _, o in deliver_outbox(bus)]
    clock.advance(55)  # the sweeper's next run may come this late

    assert moto_gaps.expire_actions() == [], f"the hook expired while the app waited for the agent: {outcomes}"


def test_a_late_launch_event_heartbeats_when_one_is_due(land, bus, clock, short_hook):
    instance_id = short_hook()
    clock.advance(70)  # the launch event reaches the app late (a throttled, retried invocation)
    outcomes = [o for _, o in deliver_outbox(bus)]
    clock.advance(55)

    assert moto_gaps.expire_actions() == [], f"the hook expired after a late launch step: {outcomes}"
    assert moto_gaps.pending_action(land.account, land.region, instance_id) is not None


def test_agent_looks_heartbeat_when_one_is_due(land, queued, clock, short_hook):
    instance_id = short_hook()
    deliver_outbox(queued.bus)  # the launch: agent offline
    clock.advance(15)
    register_container_instance(land, instance_id)
    deliver_outbox(queued.bus)  # the registration: looks at the agent, denser first, for about 110 s
    while clock.offset < 3 * SHORTEST_HOOK and queued.deliver_retries(clock):  # the agent never comes online
        assert moto_gaps.WORLD.timed_out == [], f"expired {clock.offset:.0f} s in, while the app looked"
    assert moto_gaps.pending_action(land.account, land.region, instance_id) is not None
