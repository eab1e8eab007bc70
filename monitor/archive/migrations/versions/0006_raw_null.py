"""A mention without a raw payload stores SQL NULL, not the JSON text 'null'.

Revision 0006 (schema version 6), after 0005 (issue 15). Replayed and plain mentions carried no
extra keys, and the JSON column wrote Python ``None`` as the JSON value ``null``: ``raw IS
NULL`` found none of them and the dashboard showed ``{}``. The column now stores NULL
(``schema.py``: ``JSON(none_as_null=True)``); this revision turns the rows already written that
way into NULL. Downgrading leaves them NULL (both read back as "no payload").
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NULL_PAYLOAD = {
    "sqlite": "UPDATE mentions SET raw = NULL WHERE raw = 'null'",
    "postgresql": "UPDATE mentions SET raw = NULL WHERE raw IS NOT NULL AND raw::text = 'null'",
}


def upgrade() -> None:
    op.execute(NULL_PAYLOAD[op.get_bind().dialect.name])


def downgrade() -> None:
    pass  # NULL and 'null' both mean "no raw payload"; nothing to restore
