"""The body of an HTTP error answer, shared by the write routes (ingress) and the read routes.

One class, so the OpenAPI document has one "Problem" schema.
"""

from __future__ import annotations

from pydantic import BaseModel


# No docstring: it would be the schema's description in the OpenAPI document.
class Problem(BaseModel):
    detail: str
