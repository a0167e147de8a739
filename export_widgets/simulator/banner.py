"""What the simulator says about itself: the ``export-widgets simulate`` banner.

The simulator fakes both vendors, so unlike the rest of the package this text names them.
"""

from __future__ import annotations

import shlex
from typing import Any

from ..render import text_table

__all__ = ["banner"]


def _describe(spec: Any) -> str:
    """What a simulated task will do, in a few words."""
    pending = f"INIT for {spec.start_delay:g} s, then " if spec.start_delay and spec.provider == "modelarts" else ""
    end = {"succeed": f"succeeds after {spec.duration:g} s",
           "fail": f"fails at {spec.fail_at:g}% after {spec.duration * spec.fail_at / 100:g} s",
           "stall": f"stalls at {spec.stall_at:g}%",
           "stop": f"is stopped at {spec.stop_at:g}%"}[spec.outcome]
    if spec.outcome == "fail" and spec.provider == "modelarts":
        end += f" ({spec.error_code})"
    return pending + end


def _other_credentials(sim: Any) -> list[str]:
    """The ModelArts credential kinds besides the AK/SK above, indented so no line reads as an export to paste."""
    creds = sim.credentials
    return [
        "ModelArts also accepts, instead of that AK/SK:",
        "  an IAM token (sent as X-Auth-Token; Python: ModelArtsClient(token=...)):",
        f"    {creds.token}",
        "  temporary AK/SK with its security token (signed X-Security-Token):",
        f"    HUAWEICLOUD_SDK_AK={shlex.quote(creds.temp_ak)}",
        f"    HUAWEICLOUD_SDK_SK={shlex.quote(creds.temp_sk)}",
        f"    HUAWEICLOUD_SDK_SECURITY_TOKEN={shlex.quote(creds.security_token)}",
    ]


def banner(sim: Any, scenario: Any, *, prog: str = "export-widgets") -> str:
    """What ``export-widgets simulate`` prints: the URL, the tasks, the fake credentials and example commands."""
    specs = sorted(sim.tasks.values(), key=lambda s: (s.provider, s.task_id))
    lines = [f"{prog} simulator listening on {sim.url}",
             f"scenario {scenario.name!r}, time x{scenario.speed:g}; stop with Ctrl-C or SIGTERM", "",
             "Tasks (their clocks started now):"]
    lines += ["  " + line for line in text_table(
        [[s.provider, s.task_id, s.dataset_id or "-", _describe(s)] for s in specs],
        ("PROVIDER", "TASK ID", "DATASET", "BEHAVIOUR")).splitlines()]
    policy = sim.create_policy
    limit = f"at most {policy.running_limit} running" if policy.running_limit else "no running limit"
    lines += ["", f"Exports started by a create request: {_describe(policy.spec(provider='modelarts', task_id='new'))}"
              f" ({limit}); finished Qianfan exports are downloadable from {sim.url}/bos/..."]
    lines += ["", "Simulator credentials (fake, accepted only by this simulator; not real secrets).",
              "Paste these into another shell:"]
    lines += [f"export {name}={shlex.quote(value)}" for name, value in sim.env.items()]
    lines += [""] + _other_credentials(sim)
    examples = []
    for provider in ("modelarts", "qianfan"):
        spec = next((s for s in specs if s.provider == provider), None)
        if spec is not None:
            dataset = f" --dataset {spec.dataset_id}" if provider == "modelarts" else ""
            examples.append(f"  {prog} status --provider {provider}{dataset} {spec.task_id}")
    if examples:
        lines += ["", "Then, for example:"] + examples
    return "\n".join(lines)
