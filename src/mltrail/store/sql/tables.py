"""The schema as SQLAlchemy Core tables. Migrations create it; the code reads it from here.

Times are unix seconds (double). Float columns that may hold NaN are nullable because SQLite
stores NaN as NULL; readers turn NULL back into NaN. Raw metric points live packed in
``metric_chunks``; ``metric_series`` is both the series registry and its summary.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Double,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData()


def _experiment_fk() -> Column:
    return Column(
        "experiment_id", Integer, ForeignKey("experiments.id", ondelete="CASCADE"), nullable=False
    )


projects = Table(
    "projects",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("display_name", String(140), nullable=False),
    Column("description", String(140), nullable=False, default=""),
    Column("created_at", Double, nullable=False),
    Column("next_experiment", Integer, nullable=False, default=1),
    # experiments purged for good: the project holds next_experiment - 1 - purged_experiments
    Column("purged_experiments", Integer, nullable=False, default=0, server_default="0"),
    Column("deleted_at", Double),  # NULL while active; set while deleted (restorable)
)

users = Table(
    "users",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(140), nullable=False, unique=True),
    Column("is_admin", Boolean, nullable=False, default=False),
    Column("created_at", Double, nullable=False),
)

api_tokens = Table(
    "api_tokens",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("token_sha256", String(64), nullable=False, unique=True),
    Column("label", String(200), nullable=False, default=""),
    Column("created_at", Double, nullable=False),
)

project_members = Table(
    "project_members",
    metadata,
    Column("project_id", Integer, ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True),
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
)

experiments = Table(
    "experiments",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("project_id", Integer, ForeignKey("projects.id", ondelete="CASCADE"), nullable=False),
    Column("number", Integer, nullable=False),
    Column("display_name", String(250), nullable=False),
    Column("description", Text, nullable=False, default=""),
    Column("status", String(16), nullable=False),
    Column("created_at", Double, nullable=False),
    Column("started_at", Double),
    Column("ended_at", Double),
    Column("updated_at", Double, nullable=False),
    Column("hyperparameters", Text, nullable=False, default="{}"),
    Column("environment", Text, nullable=False, default="{}"),
    Column("source", Text, nullable=False, default="{}"),
    Column("tags", Text, nullable=False, default="[]"),
    Column("stop_requested", Boolean, nullable=False, default=False),
    Column("log_count", Integer, nullable=False, default=0),
    Column("last_heartbeat", Double),  # NULL: never heartbeated, never judged crashed
    Column("notes", Text, nullable=False, default="", server_default=""),
    Column("state", String(16), nullable=False, default="active", server_default="active"),
    Column("deleted_at", Double),  # when it went to the trash (core/lifecycle.py)
    Column("client_id", String(64)),  # a run started offline: its own id (idempotent create)
    UniqueConstraint("project_id", "number", name="uq_experiments_project_number"),
    Index("ix_experiments_project_state", "project_id", "state", "number"),
    Index("uq_experiments_client_id", "client_id", unique=True),
)

store_identity = Table(  # one row: the id SDK spools know this database by
    "store_identity",
    metadata,
    Column("store_id", String(32), primary_key=True),
    Column("created_at", Double, nullable=False),
)

# searchable copies of each experiment's top-level hyperparameters and tags (the JSON columns
# above stay the record): one typed row per scalar parameter, one row per tag
experiment_params = Table(
    "experiment_params",
    metadata,
    Column(
        "experiment_id", Integer, ForeignKey("experiments.id", ondelete="CASCADE"), primary_key=True
    ),
    Column("key", Text, primary_key=True),
    Column("num_value", Double),
    Column("text_value", Text),
    Column("bool_value", Boolean),
)

experiment_tags = Table(
    "experiment_tags",
    metadata,
    Column(
        "experiment_id", Integer, ForeignKey("experiments.id", ondelete="CASCADE"), primary_key=True
    ),
    Column("tag", String(250), primary_key=True),
    Index("ix_experiment_tags_tag", "tag"),
)

metric_series = Table(
    "metric_series",
    metadata,
    Column("id", Integer, primary_key=True),
    _experiment_fk(),
    Column("key", String(250), nullable=False),
    Column("phase", String(16), nullable=False),
    Column("count", BigInteger, nullable=False, default=0),  # 64-bit since migration 0015
    Column("last_value", Double),
    Column("last_iteration", BigInteger),
    Column("last_epoch", Integer),
    Column("min_value", Double),
    Column("max_value", Double),
    UniqueConstraint("experiment_id", "key", "phase", name="uq_metric_series_key"),
    Index("ix_metric_series_key_value", "key", "phase", "last_value", "experiment_id"),
)

metric_chunks = Table(
    "metric_chunks",
    metadata,
    Column(
        "series_id", Integer, ForeignKey("metric_series.id", ondelete="CASCADE"), primary_key=True
    ),
    # the ordinal of its first point in the series (64-bit since migration 0015)
    Column("start", BigInteger, primary_key=True, autoincrement=False),
    Column("count", Integer, nullable=False),
    Column("first_iteration", BigInteger, nullable=False),
    Column("last_iteration", BigInteger, nullable=False),
    Column("data", LargeBinary, nullable=False),
)


def _level_key(last: str) -> list[Column]:
    """(series_id, level, ``last``): the key of a rollup level's rows or blocks."""
    return [
        Column(
            "series_id",
            Integer,
            ForeignKey("metric_series.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        Column("level", Integer, primary_key=True, autoincrement=False),
        Column(last, Integer, primary_key=True, autoincrement=False),
    ]


# The rollup buckets of a series not sealed in a block yet, every level's, packed in one blob
# (rollup_tails.py; a row per bucket in metric_rollups before migration 0025)
metric_rollup_tails = Table(
    "metric_rollup_tails",
    metadata,
    Column(
        "series_id",
        Integer,
        ForeignKey("metric_series.id", ondelete="CASCADE"),
        primary_key=True,
        autoincrement=False,
    ),
    Column("data", LargeBinary, nullable=False),
)

# Complete rollup buckets packed BLOCK_BUCKETS at a time (rollup_blocks.py, sealed by
# rollup_sealing.py): a chart read fetches a few blobs instead of a row per bucket; the buckets
# of a block are no longer in the series' tails.
metric_rollup_blocks = Table(
    "metric_rollup_blocks",
    metadata,
    *_level_key("block"),
    Column("first_iteration", BigInteger, nullable=False),  # lowest of its buckets'
    Column("last_iteration", BigInteger, nullable=False),  # highest of its buckets'
    Column("data", LargeBinary, nullable=False),
)

# Ingest receipts (batches.py): the seqs of a client's batches stored in an experiment, as runs
# of consecutive seqs [low, high], one row a run (a row a batch took ~0.7 B a point of 10-point
# flushes); a run starts and ends at seqs no other run of the client starts or ends at
ingest_ranges = Table(
    "ingest_ranges",
    metadata,
    Column(
        "experiment_id", Integer, ForeignKey("experiments.id", ondelete="CASCADE"), primary_key=True
    ),
    Column("kind", String(16), primary_key=True),
    Column("client_id", String(200), primary_key=True),
    Column("low", Integer, primary_key=True, autoincrement=False),
    Column("high", Integer, nullable=False),
    UniqueConstraint("experiment_id", "kind", "client_id", "high", name="uq_ingest_ranges_high"),
)

external_metrics = Table(
    "external_metrics",
    metadata,
    Column(
        "experiment_id", Integer, ForeignKey("experiments.id", ondelete="CASCADE"), primary_key=True
    ),
    Column("key", String(250), primary_key=True),
    Column("value", Text, nullable=False),
    Column("updated_at", Double, nullable=False),
)

weights_links = Table(
    "weights_links",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("weights_hash", String(40), nullable=False, index=True),
    _experiment_fk(),
    Column("iteration", BigInteger),
    Column("epoch", Integer),
    Column("created_at", Double, nullable=False),
    Index("ix_weights_links_experiment", "experiment_id"),
    Index("ix_weights_links_point", "experiment_id", "weights_hash", "iteration", "epoch"),
)

artifact_blobs = Table(
    "artifact_blobs",
    metadata,
    Column("sha256", String(64), primary_key=True),
    Column("size", BigInteger, nullable=False),
    Column("created_at", Double, nullable=False),
)

artifacts = Table(
    "artifacts",
    metadata,
    Column("id", Integer, primary_key=True),
    _experiment_fk(),
    Column("path", Text, nullable=False),
    Column(
        "sha256",
        String(64),
        ForeignKey("artifact_blobs.sha256", ondelete="RESTRICT"),
        nullable=False,
    ),
    Column("size", BigInteger, nullable=False),
    Column("media_type", String(200), nullable=False),
    Column("created_at", Double, nullable=False),
    Column("iteration", BigInteger),
    Column("epoch", Integer),
    Column("weights_hash", String(40)),
    UniqueConstraint("experiment_id", "path", name="uq_artifacts_path"),
    Index("ix_artifacts_sha256", "sha256"),
    Index("ix_artifacts_weights_hash", "weights_hash"),
)

iteration_metrics = Table(
    "iteration_metrics",
    metadata,
    Column("id", Integer, primary_key=True),
    _experiment_fk(),
    Column("key", String(250), nullable=False),
    Column("iteration", BigInteger),
    Column("epoch", Integer),
    Column("value", Text, nullable=False),
    Column("weights_hash", String(40), nullable=False),
    Column("updated_at", Double, nullable=False),
    Index("ix_iteration_metrics_experiment", "experiment_id", "weights_hash"),
)

charts = Table(
    "charts",
    metadata,
    Column(
        "experiment_id", Integer, ForeignKey("experiments.id", ondelete="CASCADE"), primary_key=True
    ),
    Column("chart_id", String(64), primary_key=True),
    Column("name", String(250), nullable=False),
    Column("scope", String(16), nullable=False),
    Column("type", String(16), nullable=False),
    Column("x_name", String(250), nullable=False),
    Column("y_names", Text, nullable=False),
    Column("x", Text, nullable=False),
    Column("y", Text, nullable=False),
    Column("updated_at", Double, nullable=False),
)

log_blocks = Table(  # consecutive lines of an experiment in one row: see log_blocks.py
    "log_blocks",
    metadata,
    Column(
        "experiment_id", Integer, ForeignKey("experiments.id", ondelete="CASCADE"), primary_key=True
    ),
    Column("first_seq", Integer, primary_key=True, autoincrement=False),
    Column("count", Integer, nullable=False),
    Column("data", LargeBinary, nullable=False),
)

jobs = Table(
    "jobs",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("project_id", Integer, ForeignKey("projects.id", ondelete="CASCADE"), nullable=False),
    Column(
        "experiment_id", Integer, ForeignKey("experiments.id", ondelete="CASCADE"), nullable=False
    ),
    Column("queue", String(100), nullable=False),
    Column("command", Text, nullable=False),
    Column("env", Text, nullable=False),
    Column("source", Text, nullable=False),
    Column("snapshot", LargeBinary),
    Column("status", String(16), nullable=False),
    Column("max_retries", Integer, nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("agent_id", String(100)),
    Column("exit_code", Integer),
    Column("error", Text),
    Column("created_at", Double, nullable=False),
    Column("claimed_at", Double),
    Column("ended_at", Double),
    Column("lease_expires_at", Double),
    Column("user_id", Integer),  # who queued it: the user its token acts for
)

job_tokens = Table(
    "job_tokens",
    metadata,
    Column("token_sha256", String(64), primary_key=True),
    Column(
        "job_id", Integer, ForeignKey("jobs.id", ondelete="CASCADE"), nullable=False, index=True
    ),
    Column("attempt", Integer, nullable=False),
    Column("created_at", Double, nullable=False),
)

project_invitations = Table(
    "project_invitations",
    metadata,
    Column("project_id", Integer, ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True),
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    Column("invited_by", Integer),
    Column("created_at", Double, nullable=False),
)

agents = Table(
    "agents",
    metadata,
    Column("id", String(100), primary_key=True),
    Column("user_id", Integer, ForeignKey("users.id", ondelete="SET NULL")),
    Column("name", String(200), nullable=False),
    Column("queues", Text, nullable=False),
    Column("lease_seconds", Double, nullable=False),
    Column("registered_at", Double, nullable=False),
    Column("last_seen_at", Double, nullable=False),
    Column("job_id", Integer),
    Column("gone", Boolean, nullable=False),
    Column("projects", Text),  # JSON list of project ids its owner started it for
)
