"""The id rule shared by models, policies and rebalances."""

import re

from order_generation.domain.errors import InvalidInput

ID_PATTERN = "[A-Za-z0-9]{24}"
_ID = re.compile(ID_PATTERN)


def check_id(value: str, field_name: str) -> None:
    """Security and portfolio ids are exactly 24 alphanumeric characters."""
    if not isinstance(value, str) or not _ID.fullmatch(value):
        raise InvalidInput(field_name, "must be exactly 24 alphanumeric characters")
