"""The test helpers' identifiers agree with python-stdnum, and the lab with both."""

from __future__ import annotations

from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st
from stdnum.be import bis as stdnum_bis
from stdnum.be import nn

from garde.lab.services.base import BusinessFault
from garde.lab.services.identifiers import (
    INDIVIDUAL,
    ORGANISATION,
    check_nihii,
    check_niss,
    check_rid,
    nihii_check_digits,
)
from tests.lab.labkit import bis, niss

births = st.dates(min_value=date(1901, 1, 1), max_value=date(2025, 12, 31))
serials = st.integers(min_value=1, max_value=997)


@given(births, serials)
def test_generated_niss_numbers_are_valid_for_stdnum_and_the_lab(born: date, serial: int) -> None:
    number = niss(born, serial)
    assert nn.is_valid(number)
    assert check_niss(number) == number


@given(births, serials)
def test_generated_bis_numbers_are_valid(born: date, serial: int) -> None:
    number = bis(born, serial)
    assert stdnum_bis.is_valid(number)
    assert check_niss(number) == number


@given(births, serials, st.integers(min_value=1, max_value=96))
def test_a_wrong_check_digit_is_refused(born: date, serial: int, shift: int) -> None:
    number = niss(born, serial)
    wrong = number[:9] + f"{(int(number[9:]) + shift) % 100:02d}"
    if nn.is_valid(wrong) or stdnum_bis.is_valid(wrong):
        return  # shifted onto the other century's check digits: still a valid number
    with pytest.raises(BusinessFault) as refused:
        check_niss(wrong)
    assert refused.value.code == "INVALID_NISS"
    assert wrong not in refused.value.reason  # masked


@pytest.mark.parametrize("value", ["1234567890", "123456789012", "1234567890a", "1234567"])
def test_nihii_is_eleven_or_eight_digits(value: str) -> None:
    with pytest.raises(BusinessFault, match="11 digits"):
        check_nihii(value)
    assert check_nihii("10012378004") == "10012378004"


def test_a_pharmacy_nihii_of_eight_digits_is_an_organisation_not_a_prescriber() -> None:
    pharmacy = "20012385"  # 6 digits, then 97 - 200123 mod 97
    assert check_nihii(pharmacy, "executor") == pharmacy
    assert check_nihii(pharmacy, "executor", ORGANISATION) == pharmacy
    with pytest.raises(BusinessFault, match="must be 11 digits"):
        check_nihii(pharmacy, "prescriber", INDIVIDUAL)
    with pytest.raises(BusinessFault, match="must be 8 digits"):
        check_nihii("10012378004", "pharmacy", ORGANISATION)


bases = st.integers(min_value=0, max_value=999_999).map(lambda n: f"{n:06d}")


@given(bases, st.integers(min_value=0, max_value=999))
def test_nihii_check_digits(base: str, qualification: int) -> None:
    """The modulo-97 (and older modulo-89) check digits are accepted, any other refused."""
    good = nihii_check_digits(base)
    individual = f"{base}{good[0]}{qualification:03d}"
    assert check_nihii(individual, kind=INDIVIDUAL) == individual
    assert check_nihii(f"{base}{good[1]}") == f"{base}{good[1]}"
    wrong = next(f"{d:02d}" for d in range(100) if f"{d:02d}" not in good)
    number = f"{base}{wrong}{qualification:03d}"
    with pytest.raises(BusinessFault, match="check digits") as refused:
        check_nihii(number)
    assert number not in refused.value.reason  # masked


def test_rid_has_the_real_format() -> None:
    assert check_rid("BEP0AB12CD34") == "BEP0AB12CD34"
    assert check_rid("BEKPXYZ12345") == "BEKPXYZ12345"
    for bad in (
        "BEP0AB12CD3",  # 11 characters
        "bep0ab12cd34",  # lower case
        "BEP0AB12CD34X",  # 13
        "BEPAAB12CD34",  # the version is P or a digit
        "BEX0AB12CD34",  # the kind is P, K or N
        "BEP0AB12CD3U",  # no U (nor I, O)
        "FRP0AB12CD34",
    ):
        with pytest.raises(BusinessFault, match="not a RID"):
            check_rid(bad)


@given(st.text(alphabet="0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=8, max_size=8))
def test_a_rid_tail_is_valid_unless_it_has_i_o_or_u(tail: str) -> None:
    rid = "BEP0" + tail
    if set(tail) & set("IOU"):
        with pytest.raises(BusinessFault):
            check_rid(rid)
    else:
        assert check_rid(rid) == rid
