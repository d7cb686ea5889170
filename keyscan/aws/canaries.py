"""AWS accounts that canary-token (honeytoken) services issue their decoy keys from.

A key from one of these accounts is a tripwire: any AWS call signed with it, or
naming it, raises its owner's alarm. keyscan reports such keys but never sends them
to AWS, whatever the flags.

Source: the list trufflesecurity/trufflehog keeps for the same purpose
(pkg/detectors/aws/access_keys/canary.go, `thinkstCanaryList` and
`thinkstKnockoffsCanaryList`), itself built from key IDs that canarytokens.org
(Thinkst) and look-alike services hand out. Add to it with `--canary-account`.
"""

from __future__ import annotations

THINKST = "Thinkst canarytokens.org"
LOOKALIKE = "a canary-token service modelled on canarytokens.org"

CANARY_ACCOUNTS: dict[str, str] = {
    **dict.fromkeys((
        "052310077262", "171436882533", "266735846894", "534261010715", "595918472158",
        "717712589309", "730335385048", "819147034852", "893192397702", "992382622183",
    ), THINKST),
    **dict.fromkeys((
        "044858866125", "251535659677", "344043088457", "351906852752", "390477818340",
        "426127672474", "427150556519", "439872796651", "445142720921", "465867158099",
        "637958123769", "693412236332", "732624840810", "735421457923", "959235150393",
        "982842642351",
    ), LOOKALIKE),
}


def canary_service(account: str, extra: frozenset[str] = frozenset()) -> str:
    """Who runs the canary service behind `account`, or "" when it is not a canary account."""
    if account in extra:
        return "a canary account you listed"
    return CANARY_ACCOUNTS.get(account, "")
