"""KnowLM's own routes: /generate (the original KnowLM server's schema) and /v1/extract."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from starlette.concurrency import run_in_threadpool

from knowlm.prompts import AlpacaTemplate
from knowlm.serve.protocol import ExtractRequest, ExtractResponse, GenerateRequest, GenerateResponse
from knowlm.serve.routing import APIError, authorize, service_of

router = APIRouter(dependencies=[Depends(authorize)])


@router.post("/generate")
async def generate(body: GenerateRequest, request: Request) -> GenerateResponse:
    service = service_of(request)
    prompt = AlpacaTemplate().format(body.instruction, body.input)
    params = body.parameters.to_sampling_params()
    (done,) = await service.complete([prompt], [params], request.is_disconnected)
    return GenerateResponse(generated_text=done.text, num_output_tokens_cf=done.completion_tokens)


@router.post("/v1/extract")
async def extract(body: ExtractRequest, request: Request) -> ExtractResponse:
    from knowlm.ie.extractor import Extractor

    service = service_of(request)
    texts = body.texts if body.texts is not None else [body.text] if body.text is not None else []
    if not texts or (body.text is not None and body.texts is not None):
        raise APIError(400, "give either 'text' or 'texts' (a non-empty list)")
    params = body.parameters.to_sampling_params()
    service.check_max_tokens(params.max_new_tokens)
    text_schema = body.schema_ if isinstance(body.schema_, str) else None
    config = body.options.to_config(body.task, text_schema)
    extractor = Extractor.from_config(service.engine, config, schema=body.schema_, params=params)
    for text in texts:
        service.check_prompt(text)
    results = await run_in_threadpool(extractor.extract_many, texts)
    return ExtractResponse(
        model=service.model_name,
        task=extractor.task.name,
        results=[
            {"text": t, **r.to_dict(outputs=body.include_outputs)}
            for t, r in zip(texts, results, strict=True)
        ],
    )
