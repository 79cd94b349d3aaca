"""Does a dataset make the student better? Fine-tune the student on a published version (TRL
SFTTrainer) and measure base vs fine-tuned on held-out problems: pass@k through the sandbox, the
style NLL of its own thinking under the base student, the share of outputs in the student's format.

Entry points: `tessy_core.evaluation.pipeline.evaluate_version` (library), `flows.evaluate`
(Prefect), `tessy evaluate sft|compare|toyworld` (CLI). Nothing here imports torch at import time.
"""
