"""The trust method's numbers: its constants and its limits (spec/trust.md 3-5, 7).

The constants of sections 3 to 5 are normative: an implementation with
other ones computes other masses and weights.  The limits of section 7
bound what a verifier stores and computes; :class:`TrustLimits` carries
them, and a verifier MAY lower them, never raise them.  Evidence that
would pass one raises :class:`TrustOversize` before it is stored
(:mod:`shinyo._trust`) -- unless a store's chains are selected instead
(:mod:`shinyo._trust_select`, spec/trust.md 2.5).

The evidence, the selection and the walk (:mod:`shinyo._trust_walk`) all
take these from here, so none of them imports another just for a number.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Final

from ._errors import LocalProtocolError, VerificationError
from ._identity import Pseudonym

__all__ = [
    "MAX_EVIDENCE_BUNDLES", "MAX_TRUST_EDGES", "MAX_TRUST_NODES", "MAX_TRUST_ROOTS",
    "TRUST_STEPS", "WEIGHT_ONE", "TrustLimits", "TrustOversize",
]

# -- spec/trust.md 3-5: the method's constants (normative) ---------------------------
PAIR_CAP: Final = 4
"""Most one rater's trades can add to its edge to one ratee: four trades."""
VOUCH_WEIGHT: Final = 2
"""What an active vouch adds to the voucher's edge: as much as two trades."""
OUT_FLOOR: Final = 4
"""An edge carries at most ``w / OUT_FLOOR`` of its source's onward mass."""
TRUST_ONE: Final = 2**40
"""The mass the roots start with, shared equally."""
TRUST_STEPS: Final = 16
"""Steps of the walk: a fixed count, so the cost is fixed too."""
CONTINUE: Final = (4, 5)
"""The share of a node's mass passed on at each step (transitivity decay)."""
THETA_SHARE: Final = (1, 2)
"""theta keeps this share of the non-root mass when every node is capped at it."""
WEIGHT_ONE: Final = 1_000_000
"""A rater's weight is in millionths of a fully trusted rater."""

# -- spec/trust.md 7: limits ------------------------------------------------------------
MAX_TRUST_ROOTS: Final = 64
MAX_TRUST_NODES: Final = 2**20
MAX_TRUST_EDGES: Final = 2**22
MAX_EVIDENCE_BUNDLES: Final = 64


class TrustOversize(VerificationError):
    """The evidence passes a limit of spec/trust.md 7: give fewer bundles or chains."""

    failure_class: ClassVar[str] = "oversize"


@dataclass(frozen=True, slots=True, kw_only=True)
class TrustLimits:
    """Limits on evidence (spec/trust.md 7).  A verifier MAY lower them, never raise them."""

    max_roots: int = MAX_TRUST_ROOTS
    max_nodes: int = MAX_TRUST_NODES
    max_edges: int = MAX_TRUST_EDGES
    max_bundles: int = MAX_EVIDENCE_BUNDLES

    def __post_init__(self) -> None:
        for name, ceiling in (("max_roots", MAX_TRUST_ROOTS), ("max_nodes", MAX_TRUST_NODES),
                              ("max_edges", MAX_TRUST_EDGES),
                              ("max_bundles", MAX_EVIDENCE_BUNDLES)):
            value = getattr(self, name)
            if type(value) is not int or not 1 <= value <= ceiling:
                raise LocalProtocolError(f"{name} must be an integer from 1 to {ceiling}")


# The check of a pseudonym argument that the evidence, the selection and the walk share.
def _key(value: object, what: str) -> bytes:
    if not isinstance(value, Pseudonym):
        raise LocalProtocolError(f"{what} must be a shinyo.Pseudonym")
    return value.key
