"""Serving many prompt adapters from one frozen backbone: the batching engine (:mod:`.engine`) and the
HTTP app (:mod:`.app`, needs the ``serve`` extra: FastAPI, uvicorn).

The engine imports no web framework, so it can be embedded in any Python program.
"""

from promptlearning.serving.engine import Prediction, PromptServer
from promptlearning.serving.limits import RequestError, ServingLimits

__all__ = ["Prediction", "PromptServer", "RequestError", "ServingLimits"]
