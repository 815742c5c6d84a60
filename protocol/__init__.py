"""shinyo: a peer-to-peer reputation protocol (sans-IO core).

Pseudonyms keep append-only chains of signed, hash-linked entries; a trade is
agreed in both chains and rated blind (commit, acknowledge, reveal), so anyone
holding the entries can check a pseudonym's history with no operator and no
network.  This package does no I/O: time, randomness and bytes are arguments.

The normative description is spec/shinyo.md; section numbers in docstrings
refer to it.
"""

from ._body import (
    Accept,
    Body,
    Cancel,
    Commit,
    Kind,
    Propose,
    Response,
    Retract,
    Reveal,
    Vouch,
)
from ._chain import Chain, Role, TradeView
from ._constants import (
    ACCEPT_WINDOW,
    COMMIT_WINDOW,
    MAX_CLOCK_SKEW,
    MAX_ENTRY_SIZE,
    MAX_PROOF_SIZE,
    PROOF_MAGIC,
    PROOF_VERSION,
    PROTOCOL_VERSION,
    RESPONSE_WINDOW,
    RETRACT_WINDOW,
)
from ._digest import rating_commitment, terms_digest, text_digest
from ._entry import Entry, entry_id
from ._errors import (
    BadSignature,
    BrokenLink,
    CommitmentMismatch,
    DecodeError,
    Forked,
    FutureTimestamp,
    Incomplete,
    InvalidBody,
    InvalidFork,
    InvalidPseudonym,
    LocalProtocolError,
    NonCanonical,
    Oversize,
    SeqGap,
    ShinyoError,
    TimestampRegression,
    TradeRuleViolation,
    UnknownTrade,
    UnsupportedVersion,
    VerificationError,
    WrongAuthor,
)
from ._fork import ForkProof
from ._identity import Pseudonym, SigningIdentity
from ._outcome import Outcome, TradeOutcome, classify
from ._participant import Participant
from ._proof import ProofReport, build_proof, verify_proof
from ._proof_file import ProofFile, read_proof_file
from ._scoring import POLICIES, TIERS, Policy, ScoreReport, Tier, Verdict, meets, score
from ._trade import (
    TRANSITIONS,
    Action,
    Event,
    RatingOpening,
    Side,
    Step,
    TradeSession,
    TradeState,
)
from ._wire import WireError

__version__ = "0.1.0"

__all__ = [
    "ACCEPT_WINDOW",
    "COMMIT_WINDOW",
    "MAX_CLOCK_SKEW",
    "MAX_ENTRY_SIZE",
    "MAX_PROOF_SIZE",
    "POLICIES",
    "PROOF_MAGIC",
    "PROOF_VERSION",
    "PROTOCOL_VERSION",
    "RESPONSE_WINDOW",
    "RETRACT_WINDOW",
    "TIERS",
    "TRANSITIONS",
    "Accept",
    "Action",
    "BadSignature",
    "Body",
    "BrokenLink",
    "Cancel",
    "Chain",
    "Commit",
    "CommitmentMismatch",
    "DecodeError",
    "Entry",
    "Event",
    "ForkProof",
    "Forked",
    "FutureTimestamp",
    "Incomplete",
    "InvalidBody",
    "InvalidFork",
    "InvalidPseudonym",
    "Kind",
    "LocalProtocolError",
    "NonCanonical",
    "Outcome",
    "Oversize",
    "Participant",
    "Policy",
    "ProofFile",
    "ProofReport",
    "Propose",
    "Pseudonym",
    "RatingOpening",
    "Response",
    "Retract",
    "Reveal",
    "Role",
    "ScoreReport",
    "SeqGap",
    "ShinyoError",
    "Side",
    "SigningIdentity",
    "Step",
    "Tier",
    "TimestampRegression",
    "TradeOutcome",
    "TradeRuleViolation",
    "TradeSession",
    "TradeState",
    "TradeView",
    "UnknownTrade",
    "UnsupportedVersion",
    "Verdict",
    "VerificationError",
    "Vouch",
    "WireError",
    "WrongAuthor",
    "__version__",
    "build_proof",
    "classify",
    "entry_id",
    "meets",
    "rating_commitment",
    "read_proof_file",
    "score",
    "terms_digest",
    "text_digest",
    "verify_proof",
]
