"""`sort_by`: the pattern the OpenAPI document gives is exactly what the parser accepts."""

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from order_generation.domain.errors import InvalidInput
from order_generation.service.models import SORTABLE_FIELDS
from order_generation.service.sorting import parse_sort, sort_pattern

PATTERN = sort_pattern(SORTABLE_FIELDS)


@given(st.from_regex(PATTERN, fullmatch=True))
def test_every_string_of_the_documented_pattern_is_accepted(text: str):
    spec = parse_sort(text, SORTABLE_FIELDS)
    assert len({field for field, _ in spec}) == len(spec)


@given(st.text(alphabet=" ,+-_adeimnorst", max_size=30))
def test_a_string_outside_the_pattern_is_refused_naming_sort_by(text: str):
    if re.fullmatch(PATTERN, text):
        return
    with pytest.raises(InvalidInput) as raised:
        parse_sort(text, SORTABLE_FIELDS)
    assert raised.value.details["field"] == "sort_by"


def test_a_field_named_again_keeps_its_first_direction():
    assert parse_sort("-name, model_id, +name", SORTABLE_FIELDS) == [("name", -1), ("model_id", 1)]
