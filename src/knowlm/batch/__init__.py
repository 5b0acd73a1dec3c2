"""Corpus-scale extraction: many input files in, one output file per input file, resumable by shard; run in
this process or on a Ray cluster with the same results."""

from knowlm.batch.runners import RUNNERS, ActorPool, Job, RunReport, extract_records, run_local, run_ray

__all__ = ["RUNNERS", "ActorPool", "Job", "RunReport", "extract_records", "run_local", "run_ray"]
