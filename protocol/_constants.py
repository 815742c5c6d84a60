"""Protocol constants: versions, domain separation tags, windows and limits.

Every value here is normative and appears in spec/shinyo.md; the section is
named beside each group.  Changing one is a protocol change.
"""

from __future__ import annotations

from typing import Final

# -- Versions (spec 3) --------------------------------------------------------
PROTOCOL_VERSION: Final = 1
"""The ``version`` field of every entry and fork proof this code writes and accepts."""

# -- Domain separation tags (spec 3.4) -----------------------------------------
# Each tag is ASCII, ends in a NUL byte, and names the version, so a signature
# or hash made for one purpose can never be replayed as another (nor across
# protocol versions).
DST_ENTRY_SIG: Final = b"shinyo/v1/entry-signature\x00"
DST_ENTRY_ID: Final = b"shinyo/v1/entry-id\x00"
DST_COMMITMENT: Final = b"shinyo/v1/rating-commitment\x00"
DST_TERMS: Final = b"shinyo/v1/terms-digest\x00"
DST_TEXT: Final = b"shinyo/v1/text-digest\x00"

# -- Sizes (spec 3.3) ---------------------------------------------------------
HASH_SIZE: Final = 32
KEY_SIZE: Final = 32
SIGNATURE_SIZE: Final = 64
NONCE_SIZE: Final = 16
SALT_SIZE: Final = 16
GENESIS_PREV: Final = bytes(HASH_SIZE)
"""``prev`` of the first entry (seq 1) of every chain: 32 zero bytes."""

MAX_ENTRY_SIZE: Final = 1024
"""Largest encoded entry (envelope included), in bytes."""
MAX_FORK_PROOF_SIZE: Final = 2 * MAX_ENTRY_SIZE + 16
MAX_CONTEXT_LEN: Final = 64
MAX_TAGS: Final = 8
MAX_TAG_LEN: Final = 24
MAX_SEQ: Final = 2**32 - 1
MAX_TIMESTAMP: Final = 2**40 - 1
MIN_STARS: Final = 1
MAX_STARS: Final = 5

# -- Time (spec 7.6) ----------------------------------------------------------
DAY: Final = 86_400
ACCEPT_WINDOW: Final = 7 * DAY
"""A proposal may be accepted at most this long after it was made."""
COMMIT_WINDOW: Final = 30 * DAY
"""Each party must commit its rating at most this long after the acceptance."""
RESPONSE_WINDOW: Final = 14 * DAY
"""Acknowledging the counterparty's commitment, and revealing once able to."""
RETRACT_WINDOW: Final = 30 * DAY
"""A rater may retract its rating at most this long after revealing it."""
MAX_CLOCK_SKEW: Final = 10 * 60
"""How far in the future (by the verifier's clock) an entry may claim to be."""

# -- Proof bundles (spec/proof.md) ------------------------------------------------
PROOF_MAGIC: Final = b"SHINYO-PROOF\x00"
"""The first bytes of every proof file, before its one CBOR item."""
PROOF_VERSION: Final = 1
MAX_PROOF_SIZE: Final = 64 * 1024 * 1024
MAX_PROOF_ENTRIES: Final = 2**18
EVIDENCE_SPAN: Final = ACCEPT_WINDOW + COMMIT_WINDOW + 2 * RESPONSE_WINDOW
"""How far past a counterparty's last entry for a trade a builder includes its chain."""
