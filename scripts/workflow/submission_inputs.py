"""The submission rule's input functions (rules/submission.smk), a part of
:class:`scripts.workflow.rule_inputs.RuleInputs`: the submission job's plan and the runs' files
it reads (:mod:`scripts.submission.plan`).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import ModuleType
from typing import Any


def _plan() -> ModuleType:
    """scripts.submission.plan, imported only when the submission target is asked for."""
    # lazy: a campaign that is not submitted loads no submission code at every start
    from scripts.submission import plan

    return plan


class SubmissionInputs:
    """The submission part of RuleInputs; RuleInputs sets ``config``."""

    config: Mapping[str, Any]

    def submission_plan_file(self) -> str:
        """The submission job's plan (the eligible systems, benchmarks and runs, what is left
        out and why) as a file named by its content: the rule's input, so a changed
        configuration redoes the job. ConfigError when nothing is eligible."""
        plan = _plan()
        return str(plan.plan_file(plan.submission_plan(self.config)))

    def submission_inputs(self) -> list[str]:
        """What the submission job reads: every eligible run's mlperf.log, run.json and
        result.json, and the environment.json of its system."""
        plan = _plan()
        return list(plan.eligible_inputs(plan.submission_plan(self.config)))
