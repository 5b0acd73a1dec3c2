import pytest

from knowlm.config import SamplingParams
from knowlm.serve.batching import BatchingEngine, QueueFullError
from tests.serve.conftest import GatedEngine


def test_requests_in_the_window_share_one_engine_call():
    engine = GatedEngine()
    engine.gate.set()
    batcher = BatchingEngine(engine, max_batch_size=8, wait_s=0.2)
    futures = [f for p in ["a", "b", "c"] for f in batcher.submit([p], SamplingParams())]
    assert [f.result(5).text for f in futures] == ["answer to a", "answer to b", "answer to c"]
    assert engine.calls == [["a", "b", "c"]] and batcher.engine_calls == 1
    batcher.close()


def test_different_settings_are_separate_calls():
    engine = GatedEngine()
    engine.gate.set()
    batcher = BatchingEngine(engine, max_batch_size=8, wait_s=0.2)
    a = batcher.submit(["a"], SamplingParams(max_new_tokens=5))
    b = batcher.submit(["b"], SamplingParams(max_new_tokens=9))
    [f.result(5) for f in a + b]
    assert sorted(engine.calls) == [["a"], ["b"]]
    batcher.close()


def test_cancelled_requests_are_dropped_before_they_run():
    engine = GatedEngine()
    batcher = BatchingEngine(engine, max_batch_size=1, wait_s=0)
    first = batcher.submit(["first"], SamplingParams())
    assert engine.started.wait(5)  # running, waits on the gate
    second = batcher.submit(["gone"], SamplingParams())
    assert second[0].cancel()  # the client went away while it waited
    third = batcher.submit(["third"], SamplingParams())
    engine.gate.set()
    assert first[0].result(5).text == "answer to first"
    assert third[0].result(5).text == "answer to third"  # queued after the cancelled one: it had its turn
    assert engine.calls == [["first"], ["third"]]
    batcher.close()


def test_bounded_queue():
    engine = GatedEngine()
    batcher = BatchingEngine(engine, max_batch_size=1, wait_s=0, max_queue=2)
    batcher.submit(["running"], SamplingParams())
    assert engine.started.wait(5)  # the worker holds it: the queue is empty
    batcher.submit(["w1", "w2"], SamplingParams())
    with pytest.raises(QueueFullError, match="queue is full"):
        batcher.submit(["w3"], SamplingParams())
    engine.gate.set()
    batcher.close()


def test_engine_errors_reach_every_caller():
    class Broken(GatedEngine):
        def generate(self, prompts, params):
            raise RuntimeError("boom")

    batcher = BatchingEngine(Broken(), wait_s=0.05)
    futures = batcher.submit(["a", "b"], SamplingParams())
    for f in futures:
        with pytest.raises(RuntimeError, match="boom"):
            f.result(5)
    batcher.close()


def test_a_failing_prompt_in_a_merged_call_fails_alone():
    class Picky(GatedEngine):
        def generate(self, prompts, params):
            if "bad" in prompts:
                raise ValueError("bad prompt")
            return super().generate(prompts, params)

    engine = Picky()
    engine.gate.set()
    batcher = BatchingEngine(engine, max_batch_size=8, wait_s=0.2)
    good, bad, other = batcher.submit(["a", "bad", "c"], SamplingParams())
    assert good.result(5).text == "answer to a" and other.result(5).text == "answer to c"
    with pytest.raises(ValueError, match="bad prompt"):
        bad.result(5)
    batcher.close()


def test_an_engine_that_schedules_itself_gets_every_request_directly(tiny_model_dir, tmp_path):
    from knowlm.engines.llamacpp import is_llamacpp_available

    if not is_llamacpp_available():
        pytest.skip("llama-cpp-python is not installed")
    from knowlm.config import ModelConfig
    from knowlm.engines import create_engine
    from knowlm.weights.gguf_export import export_gguf

    gguf = export_gguf(tiny_model_dir, tmp_path / "tiny.gguf", qtype="f16")
    engine = create_engine(ModelConfig(model=str(gguf), engine="llamacpp", n_ctx=256, batch_size=4))
    batcher = BatchingEngine(engine, max_batch_size=4, wait_s=0.2)
    params = SamplingParams(max_new_tokens=6)
    futures = batcher.submit(["Berlin is", "Paris is"], params)
    futures += batcher.submit(["Rome is"], params.replace(max_new_tokens=3))  # other settings, same steps
    done = [f.result(30) for f in futures]
    assert [c.completion_tokens for c in done] == [6, 6, 3]
    assert batcher.engine_calls == 0 and not batcher._worker.is_alive()  # no merging thread in between
    assert [c.text for c in batcher.generate_each(["Berlin is"], [params])] == [done[0].text]
    batcher.close()
    engine.close()
