"""Flags and helpers shared by the subcommands (no logic of their own beyond wiring)."""

from __future__ import annotations

import argparse
from typing import Any

from knowlm.cli.args import add_dataclass_args, from_args
from knowlm.config import ModelConfig, SamplingParams


def add_model_args(parser: argparse.ArgumentParser) -> None:
    add_dataclass_args(parser.add_argument_group("model"), ModelConfig)


def add_sampling_args(parser: argparse.ArgumentParser) -> None:
    add_dataclass_args(parser.add_argument_group("decoding"), SamplingParams)


def model_config(args: argparse.Namespace) -> ModelConfig:
    config = from_args(ModelConfig, args)
    config.validate()
    return config


def sampling_params(args: argparse.Namespace) -> SamplingParams:
    return from_args(SamplingParams, args).validate()


def load_engine(args: argparse.Namespace) -> Any:
    """Validate every flag first, then load the engine (which may take a while)."""
    from knowlm.engines import create_engine

    config = model_config(args)
    sampling_params(args)  # fail on bad decoding flags before loading any model
    return create_engine(config)
