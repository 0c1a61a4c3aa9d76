"""Schemas of registry editions: the edition file an operator writes (README, "Registry editions"), what its plan
shows, and what applying it recorded (the tables are in app.models.registry)."""

from datetime import date, datetime
from typing import Annotated

from pydantic import BaseModel, Field, StringConstraints

from app.models.organization import OrgKind, OrgSide
from app.text import Code, Name, Text

EditionId = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9._-]{0,63}$")]
WardName = Annotated[Name, StringConstraints(max_length=120)]
UnitCode = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]


class _Strict(BaseModel):
    model_config = {"extra": "forbid"}


class EditionCommittee(_Strict):
    """A committee the edition adds (it starts on `effective`) or updates (its names and place in the registry)."""

    code: Code
    kind: OrgKind
    side: OrgSide | None = Field(description="workplace or residence; none for a committee outside the exchange")
    name: Name = Field(max_length=255)
    short_name: Name | None = Field(default=None, max_length=120)
    unit: Name | None = Field(default=None, max_length=32, description="phường, xã, quận, ...")
    area: Name | None = Field(default=None, max_length=255)
    parent_code: Code | None = None


class EditionRetirement(_Strict):
    """A committee that ends on `effective`, and where its members go."""

    code: Code
    successors: list[Code] = Field(min_length=1, max_length=500)
    wards: dict[WardName, Code] = Field(
        default_factory=dict,
        max_length=5000,
        description="residence side, several successors: old ward name → successor (compared without diacritics)",
    )
    units: dict[UnitCode, Code] = Field(
        default_factory=dict,
        max_length=5000,
        description="workplace side, several successors: workplace unit code → successor",
    )


class Edition(_Strict):
    """An edition of the committee registry (README, "Registry editions")."""

    edition: EditionId = Field(description="a stable id; applying the same id again changes nothing")
    effective: date = Field(description="retired committees end, new committees start, on this day")
    description: Text = Field(max_length=2000)
    example: bool = Field(default=False, description="true: an example, never to be applied to real data")
    committees: list[EditionCommittee] = Field(default_factory=list, max_length=2000)
    retire: list[EditionRetirement] = Field(default_factory=list, max_length=1000)


class RetiredCommittee(BaseModel):
    code: str
    side: str | None
    successors: list[str]


class Reassignment(BaseModel):
    """Members of a retired committee that go to one successor, and their open notices that follow them."""

    from_org: str
    to_org: str
    side: str
    members: int
    sample: list[str] = Field(description="a few of their party card numbers")
    notices: int = Field(description="open notices addressed to the retired committee that pass to the successor")


class UnmappableMember(BaseModel):
    """A member whose ward (or unit) the edition's mapping does not name: left where it is, never guessed."""

    party_card_no: str
    full_name: str
    committee: str
    side: str
    residence_ward: str | None = None
    workplace_unit_code: str | None = None


class RetiredAccount(BaseModel):
    login: str
    kind: str
    org_code: str


class StoppedSubscription(BaseModel):
    id: str
    org_code: str
    url: str


class EditionPlan(BaseModel):
    """What an edition changes (a plan), or changed (once applied)."""

    edition: str
    sha256: str
    effective: date
    description: str
    example: bool
    already_applied: bool = Field(description="an edition with this id and this content was applied before")
    added: list[str] = Field(description="committees that start on `effective`")
    updated: list[str]
    retired: list[RetiredCommittee]
    members_reassigned: int
    reassignments: list[Reassignment]
    unmappable: list[UnmappableMember] = Field(description="every member the mapping cannot place: left untouched")
    notices_transferred: int = Field(description="open notices that pass to a successor (a `notice.transferred` each)")
    notices_left: int = Field(
        description="open notices addressed to a retired committee that stay with it: their member was not re-assigned"
    )
    accounts_retired: list[RetiredAccount] = Field(description="accounts that stop working on `effective`")
    subscriptions_stopped: list[StoppedSubscription]


class EditionApplied(EditionPlan):
    applied_at: datetime
    applied_by: str


class EditionsPublic(BaseModel):
    items: list[EditionApplied]
