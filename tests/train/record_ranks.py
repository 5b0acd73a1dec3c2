"""Run `knowlm` under torchrun, recording which rank calls the Trainer's save_model and the tokenizer's
save_pretrained (lines "RANK CALL DIRNAME" appended to $KNOWLM_TEST_RECORD): DeepSpeed ZeRO-3 needs save_model on
every rank, while side files must be written once. A rank still running after 240 s prints every thread's
stack and exits, so that a hang shows where it is."""

import faulthandler
import os
import sys
from pathlib import Path

from transformers import PreTrainedTokenizerBase, Trainer

from knowlm.cli.main import main


def recording(cls: type, name: str) -> None:
    original = getattr(cls, name)

    def wrapper(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        with open(os.environ["KNOWLM_TEST_RECORD"], "a", encoding="utf-8") as f:
            where = Path(
                args[0] if args else kwargs.get("output_dir") or kwargs.get("save_directory", "")
            ).name
            f.write(f"{os.environ.get('RANK', '0')} {name} {where}\n")
        return original(self, *args, **kwargs)

    setattr(cls, name, wrapper)


faulthandler.dump_traceback_later(240, exit=True)
recording(Trainer, "save_model")
recording(PreTrainedTokenizerBase, "save_pretrained")
sys.exit(main(sys.argv[1:]))
