"""Storage operations of the registry, each one transaction, safe under concurrent replicas."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import Engine, Select, delete, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, sessionmaker

from taskschema import (
    CompatibilityMode,
    CompatibilityReport,
    EffectiveConfig,
    RegisteredVersion,
    SchemaReference,
    TaskContract,
    TaskPage,
    TaskSummary,
    VersionDetail,
    VersionInfo,
)
from taskschema import loads_strict as _loads
from taskschema._compat import check_compatibility, is_transitive
from taskschema._references import FetchedSchema, SchemaAddress

from ._errors import (
    ConfigNotFound,
    ContractInvalid,
    Incompatible,
    NotSoftDeleted,
    SchemaNotFound,
    TaskNotFound,
    VersionNotFound,
)
from ._tables import (
    GLOBAL_SCOPE,
    Base,
    BundledReference,
    CompatibilitySetting,
    Schema,
    Task,
    Token,
    Version,
    utcnow,
)

SCOPES = ("read", "publish", "send", "admin")
DEFAULT_COMPATIBILITY = CompatibilityMode.BACKWARD


@dataclass(frozen=True)
class PublishOutcome:
    registered: RegisteredVersion
    created: bool


@dataclass(frozen=True)
class StoredSchema:
    id: int
    fingerprint: str
    document: bytes


@dataclass(frozen=True)
class TokenInfo:
    id: int
    name: str
    scopes: frozenset[str]
    created_at: datetime
    revoked: bool


def hash_token(token: str) -> str:
    # Tokens are 256 random bits, so a fast unsalted hash is enough to make a stolen
    # database useless; a slow KDF guards low-entropy passwords, which these are not.
    return hashlib.sha256(token.encode()).hexdigest()


class Store:
    """The registry's data, behind one engine."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._sessions = sessionmaker(engine, expire_on_commit=False)

    @contextmanager
    def _transaction(self) -> Iterator[Session]:
        with self._sessions.begin() as session:
            yield session

    def _insert(self, table: type[Base]) -> Any:
        """An INSERT that supports ON CONFLICT, in the engine's dialect."""
        dialect = postgresql if self.engine.dialect.name == "postgresql" else sqlite
        return dialect.insert(table)

    # -- publishing --------------------------------------------------------------

    def publish(
        self, contract: TaskContract, references: Sequence[SchemaReference] = ()
    ) -> PublishOutcome:
        """Store `contract` as the next version of its task, unless it is already the
        content of a live version (then that version is returned, created=False).

        `references` are the registry references `contract` was bundled from; they are
        recorded with its schema when the schema is new.
        """
        with self._transaction() as session:
            # Writing first takes SQLite's write lock before any read; on PostgreSQL the
            # row lock below serialises publishers of one task across replicas.
            session.execute(
                self._insert(Task)
                .values(name=contract.task, last_version=0, created_at=utcnow())
                .on_conflict_do_nothing(index_elements=["name"])
            )
            task = session.scalars(
                select(Task).where(Task.name == contract.task).with_for_update()
            ).one()
            existing = session.execute(
                select(Version.version, Schema.id)
                .join(Schema, Schema.id == Version.schema_id)
                .where(
                    Version.task_id == task.id,
                    Schema.fingerprint == contract.fingerprint,
                    Version.deleted.is_(False),
                )
                .order_by(Version.version.desc())
                .limit(1)
            ).first()
            if existing is not None:
                version, schema_id = existing
                return PublishOutcome(
                    RegisteredVersion(
                        task=task.name,
                        version=version,
                        id=schema_id,
                        fingerprint=contract.fingerprint,
                    ),
                    created=False,
                )
            report = self._check(session, task.name, contract, version=None, mode=None)
            if not report.compatible:
                raise Incompatible(
                    f"{contract.task} would break {report.mode.value} compatibility: "
                    f"{len(report.violations)} violation(s); nothing was stored",
                    report.violations,
                )
            schema_id = self._store_schema(session, contract, references)
            task.last_version += 1
            session.add(Version(task_id=task.id, version=task.last_version, schema_id=schema_id))
            return PublishOutcome(
                RegisteredVersion(
                    task=task.name,
                    version=task.last_version,
                    id=schema_id,
                    fingerprint=contract.fingerprint,
                ),
                created=True,
            )

    def _store_schema(
        self, session: Session, contract: TaskContract, references: Sequence[SchemaReference]
    ) -> int:
        """The id of `contract`'s schema row, inserted with its references if new."""
        # Fingerprints include the task name, and this runs under the task's row lock,
        # so no other publisher can insert this fingerprint between the read and insert.
        schema_id = session.scalar(
            select(Schema.id).where(Schema.fingerprint == contract.fingerprint)
        )
        if schema_id is not None:
            return schema_id
        self._lock_referenced(session, {ref.schema_id for ref in references})
        schema = Schema(
            fingerprint=contract.fingerprint,
            document=contract.canonical_json().decode(),
            created_at=utcnow(),
        )
        session.add(schema)
        session.flush()
        session.add_all(
            BundledReference(
                schema_id=schema.id,
                position=position,
                ref=ref.ref,
                referenced_schema_id=ref.schema_id,
                bundled_as=ref.bundled_as,
            )
            for position, ref in enumerate(references)
        )
        return schema.id

    def _lock_referenced(self, session: Session, schema_ids: set[int]) -> None:
        """Keep the schemas bundled from until commit, or refuse if one is gone.

        They were read before this transaction; a permanent delete since then would
        otherwise break the reference rows' foreign key.
        """
        if not schema_ids:
            return
        query = select(Schema.id).where(Schema.id.in_(schema_ids))
        if self.engine.dialect.name == "postgresql":
            query = query.with_for_update(read=True)  # delete_version locks FOR UPDATE
        gone = schema_ids - set(session.scalars(query))
        if gone:
            raise ContractInvalid(
                "a schema this contract references was deleted while it was published: "
                + ", ".join(map(str, sorted(gone)))
            )

    def fetch(self, address: SchemaAddress) -> FetchedSchema | None:
        """A registered document for bundling: by schema id, or a live task version."""
        query = select(Schema)
        if address.schema_id is not None:
            query = query.where(Schema.id == address.schema_id)
        else:
            query = query.join(Version, Version.schema_id == Schema.id).where(
                Version.task_id
                == select(Task.id).where(Task.name == address.task).scalar_subquery(),
                Version.version == address.version,
                Version.deleted.is_(False),
            )
        with self._transaction() as session:
            row = session.scalars(query).one_or_none()
            if row is None:
                return None
            return FetchedSchema(row.id, _parse(row.fingerprint, row.document).to_dict())

    def check(
        self, contract: TaskContract, *, version: int | None, mode: CompatibilityMode | None
    ) -> CompatibilityReport:
        """Whether `contract` could be published, without storing it.

        `version` compares with that version only; `mode` overrides the task's mode.
        """
        with self._transaction() as session:
            return self._check(session, contract.task, contract, version=version, mode=mode)

    def _check(
        self,
        session: Session,
        name: str,
        contract: TaskContract,
        *,
        version: int | None,
        mode: CompatibilityMode | None,
    ) -> CompatibilityReport:
        mode = mode or self._config(session, name).compatibility
        query = _versions_query(name, include_deleted=False).with_only_columns(
            Version.version, Schema.fingerprint, Schema.document
        )
        if version is not None:
            query = query.where(Version.version == version)
        elif not is_transitive(mode):
            query = query.order_by(None).order_by(Version.version.desc()).limit(1)
        rows = sorted(session.execute(query).all())
        if version is not None and not rows:
            raise VersionNotFound(f"task {name!r} has no live version {version}")
        earlier = [(row.version, _parse(row.fingerprint, row.document)) for row in rows]
        if not earlier:
            return CompatibilityReport(compatible=True, mode=mode, violations=[], warnings=[])
        return check_compatibility(contract, earlier, mode)

    # -- reading -----------------------------------------------------------------

    def list_tasks(
        self, *, prefix: str, limit: int, offset: int, include_deleted: bool
    ) -> TaskPage:
        with self._transaction() as session:
            names = select(Task.name).where(Task.name.startswith(prefix, autoescape=True))
            if not include_deleted:
                names = names.where(
                    select(Version.id)
                    .where(Version.task_id == Task.id, Version.deleted.is_(False))
                    .exists()
                )
            total = session.scalar(select(func.count()).select_from(names.subquery())) or 0
            page = session.scalars(names.order_by(Task.name).limit(limit).offset(offset)).all()
            tasks = [self._summary(session, name, include_deleted) for name in page]
        return TaskPage(tasks=tasks, total=total, limit=limit, offset=offset)

    def get_task(self, name: str, *, include_deleted: bool) -> TaskSummary:
        with self._transaction() as session:
            summary = self._summary(session, name, include_deleted)
        if not summary.versions and not include_deleted:
            raise TaskNotFound(f"task {name!r} has no versions")
        return summary

    def _summary(self, session: Session, name: str, include_deleted: bool) -> TaskSummary:
        rows = session.execute(
            _versions_query(name, include_deleted).with_only_columns(
                Version.version, Version.deleted, Schema.document
            )
        ).all()
        if not rows and session.scalar(select(Task.id).where(Task.name == name)) is None:
            raise TaskNotFound(f"no task named {name!r}")
        live = [row for row in rows if not row.deleted]
        description = _loads(live[-1].document).get("description", "") if live else ""
        return TaskSummary(
            task=name,
            latest_version=live[-1].version if live else None,
            versions=[row.version for row in rows],
            description=description,
        )

    def list_versions(self, name: str, *, include_deleted: bool) -> list[VersionInfo]:
        with self._transaction() as session:
            rows = session.execute(_versions_query(name, include_deleted)).all()
            if not rows:
                self._summary(session, name, include_deleted=True)  # 404 for unknown tasks
                raise TaskNotFound(f"task {name!r} has no versions")
        return [_info(name, row.Version, row.Schema) for row in rows]

    def get_version(
        self, name: str, version: int | None, *, include_deleted: bool
    ) -> VersionDetail:
        """One version, or the latest live one when `version` is None."""
        query = _versions_query(name, include_deleted)
        if version is None:
            query = (
                query.where(Version.deleted.is_(False))
                .order_by(None)
                .order_by(Version.version.desc())
            )
        else:
            query = query.where(Version.version == version)
        with self._transaction() as session:
            row = session.execute(query.limit(1)).first()
            if row is None:
                self._summary(session, name, include_deleted=True)  # 404 for unknown tasks
                what = "no live version" if version is None else f"no version {version}"
                raise VersionNotFound(f"task {name!r} has {what}")
            references = _references(session, row.Schema.id)
        info = _info(name, row.Version, row.Schema)
        return VersionDetail(
            **info.model_dump(), contract=_loads(row.Schema.document), references=references
        )

    def get_schema(self, schema_id: int) -> StoredSchema:
        with self._transaction() as session:
            schema = session.get(Schema, schema_id)
            if schema is None:
                raise SchemaNotFound(f"no schema with id {schema_id}")
            return StoredSchema(schema.id, schema.fingerprint, schema.document.encode())

    # -- deleting ----------------------------------------------------------------

    def delete_version(self, name: str, version: int, *, permanent: bool) -> None:
        with self._transaction() as session:
            row = session.execute(
                select(Version)
                .join(Task, Task.id == Version.task_id)
                .where(Task.name == name, Version.version == version)
                .with_for_update()
            ).scalar_one_or_none()
            if row is None:
                raise VersionNotFound(f"task {name!r} has no version {version}")
            if not permanent:
                row.deleted = True
                return
            if not row.deleted:
                raise NotSoftDeleted(
                    f"version {version} of {name!r} is live: soft-delete it before deleting "
                    "it permanently"
                )
            schema_id = row.schema_id
            session.delete(row)
            session.flush()
            # Locked first, so a publish bundling from this schema either commits its
            # references before the check below or finds the schema gone.
            session.execute(select(Schema.id).where(Schema.id == schema_id).with_for_update())
            if not _still_needed(session, schema_id):
                session.execute(
                    delete(BundledReference).where(BundledReference.schema_id == schema_id)
                )
                session.execute(delete(Schema).where(Schema.id == schema_id))

    # -- compatibility config ----------------------------------------------------

    def get_config(self, name: str | None) -> EffectiveConfig:
        """The mode for task `name` (falling back to the global one), or the global mode."""
        with self._transaction() as session:
            return self._config(session, name)

    def _config(self, session: Session, name: str | None) -> EffectiveConfig:
        modes = dict(
            session.execute(
                select(CompatibilitySetting.scope, CompatibilitySetting.mode).where(
                    CompatibilitySetting.scope.in_([GLOBAL_SCOPE, name or GLOBAL_SCOPE])
                )
            ).all()
        )
        if name is not None and name in modes:
            return EffectiveConfig(compatibility=CompatibilityMode(modes[name]), source="task")
        mode = modes.get(GLOBAL_SCOPE, DEFAULT_COMPATIBILITY)
        return EffectiveConfig(compatibility=CompatibilityMode(mode), source="global")

    def set_config(self, name: str | None, mode: CompatibilityMode) -> None:
        with self._transaction() as session:
            session.execute(
                self._insert(CompatibilitySetting)
                .values(scope=name or GLOBAL_SCOPE, mode=mode.value)
                .on_conflict_do_update(index_elements=["scope"], set_={"mode": mode.value})
            )

    def delete_config(self, name: str) -> None:
        with self._transaction() as session:
            deleted = session.execute(
                delete(CompatibilitySetting).where(CompatibilitySetting.scope == name)
            )
            if deleted.rowcount == 0:  # type: ignore[attr-defined]
                raise ConfigNotFound(f"task {name!r} has no compatibility setting of its own")

    # -- tokens ------------------------------------------------------------------

    def create_token(self, name: str, scopes: Sequence[str]) -> str:
        """Create a token and return it; only its hash is stored."""
        unknown = set(scopes) - set(SCOPES)
        if unknown or not scopes:
            raise ValueError(f"scopes must be among {', '.join(SCOPES)}")
        token = "tsk_" + secrets.token_urlsafe(32)
        with self._transaction() as session:
            session.add(
                Token(name=name, token_hash=hash_token(token), scopes=" ".join(sorted(scopes)))
            )
        return token

    def find_token(self, token: str) -> TokenInfo | None:
        with self._transaction() as session:
            row = session.scalars(
                select(Token).where(Token.token_hash == hash_token(token))
            ).one_or_none()
            return None if row is None else _token_info(row)

    def list_tokens(self) -> list[TokenInfo]:
        with self._transaction() as session:
            return [_token_info(row) for row in session.scalars(select(Token).order_by(Token.id))]

    def revoke_token(self, token_id: int) -> bool:
        with self._transaction() as session:
            revoked = session.execute(
                update(Token)
                .where(Token.id == token_id, Token.revoked_at.is_(None))
                .values(revoked_at=utcnow())
            )
            return bool(revoked.rowcount)  # type: ignore[attr-defined]


def _versions_query(name: str, include_deleted: bool) -> Select[Version, Schema]:
    query = (
        select(Version, Schema)
        .join(Task, Task.id == Version.task_id)
        .join(Schema, Schema.id == Version.schema_id)
        .where(Task.name == name)
        .order_by(Version.version)
    )
    return query if include_deleted else query.where(Version.deleted.is_(False))


def _still_needed(session: Session, schema_id: int) -> bool:
    """Whether a version holds the schema, or another schema was bundled from it (kept
    then, so the provenance a version shows stays readable at /schemas/{id})."""
    used = select(Version.id).where(Version.schema_id == schema_id)
    referenced = select(BundledReference.id).where(
        BundledReference.referenced_schema_id == schema_id
    )
    return bool(session.scalar(select(used.exists() | referenced.exists())))


def _references(session: Session, schema_id: int) -> list[SchemaReference]:
    rows = session.scalars(
        select(BundledReference)
        .where(BundledReference.schema_id == schema_id)
        .order_by(BundledReference.position)
    )
    return [
        SchemaReference(ref=row.ref, schema_id=row.referenced_schema_id, bundled_as=row.bundled_as)
        for row in rows
    ]


@lru_cache(maxsize=1024)
def _parse(fingerprint: str, document: str) -> TaskContract:
    """A stored contract, parsed once per process (stored documents are immutable)."""
    return TaskContract.from_json(document)


def _info(name: str, version: Version, schema: Schema) -> VersionInfo:
    return VersionInfo(
        task=name,
        version=version.version,
        id=schema.id,
        fingerprint=schema.fingerprint,
        deleted=version.deleted,
        created_at=version.created_at,
    )


def _token_info(row: Token) -> TokenInfo:
    return TokenInfo(
        id=row.id,
        name=row.name,
        scopes=frozenset(row.scopes.split()),
        created_at=row.created_at,
        revoked=row.revoked_at is not None,
    )
