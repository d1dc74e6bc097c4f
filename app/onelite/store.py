"""SQLite persistence: every object is a JSON document in one table.

Each XML-RPC call runs inside one transaction (see engine.py), so a call that
fails half-way leaves nothing behind. VMs also keep their pool-form XML and a
small quota summary in columns, so pool listings and quota sums never decode
the whole document; and, as oned keeps a VM's body and short body in columns, its
extended pool form, so an extended listing costs about what a short one does.
"""

from __future__ import annotations

import json
import sqlite3

SCHEMA = """
CREATE TABLE IF NOT EXISTS objects (
    kind TEXT NOT NULL, oid INTEGER NOT NULL, name TEXT NOT NULL,
    uid INTEGER NOT NULL DEFAULT 0, gid INTEGER NOT NULL DEFAULT 0,
    perms TEXT NOT NULL DEFAULT '', state INTEGER NOT NULL DEFAULT 0,
    body TEXT NOT NULL, pool_xml TEXT, qsum TEXT, full_xml TEXT,
    PRIMARY KEY (kind, oid)
);
CREATE INDEX IF NOT EXISTS objects_name ON objects (kind, name);
CREATE INDEX IF NOT EXISTS objects_owner ON objects (kind, uid);
CREATE TABLE IF NOT EXISTS seq (kind TEXT PRIMARY KEY, next INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS pending (
    kind TEXT NOT NULL, oid INTEGER NOT NULL, due REAL NOT NULL, PRIMARY KEY (kind, oid)
);
CREATE TABLE IF NOT EXISTS acl (
    id INTEGER PRIMARY KEY, user INTEGER NOT NULL, resource INTEGER NOT NULL,
    rights INTEGER NOT NULL, zone INTEGER NOT NULL
);
"""


class Store:
    def __init__(self, path: str):
        self.db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.executescript(SCHEMA)
        columns = {row[1] for row in self.db.execute("PRAGMA table_info(objects)")}
        if "full_xml" not in columns:  # a state directory of an earlier onelite
            self.db.execute("ALTER TABLE objects ADD COLUMN full_xml TEXT")

    # -- transactions --------------------------------------------------------
    def begin(self):
        self.db.execute("BEGIN IMMEDIATE")

    def commit(self):
        self.db.execute("COMMIT")

    def rollback(self):
        self.db.execute("ROLLBACK")

    def close(self):
        self.db.close()

    # -- objects -------------------------------------------------------------
    def get(self, kind: str, oid: int) -> dict | None:
        row = self.db.execute("SELECT body FROM objects WHERE kind=? AND oid=?", (kind, oid)).fetchone()
        return json.loads(row[0]) if row else None

    def put(
        self, kind: str, obj: dict, pool_xml: str | None = None, qsum: dict | None = None, full_xml: str | None = None
    ):
        self.db.execute(
            "INSERT OR REPLACE INTO objects (kind, oid, name, uid, gid, perms, state, body, pool_xml, qsum, full_xml)"
            " VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            (
                kind,
                obj["ID"],
                obj["NAME"],
                obj.get("UID", 0),
                obj.get("GID", 0),
                "".join(map(str, obj.get("PERMS", ()))),
                obj.get("STATE", 0),
                json.dumps(obj, separators=(",", ":")),
                pool_xml,
                json.dumps(qsum, separators=(",", ":")) if qsum is not None else None,
                full_xml,
            ),
        )

    def delete(self, kind: str, oid: int):
        self.db.execute("DELETE FROM objects WHERE kind=? AND oid=?", (kind, oid))

    def all(self, kind: str) -> list[dict]:
        """Every object of *kind*, highest id first (oned's pool order)."""
        rows = self.db.execute("SELECT body FROM objects WHERE kind=? ORDER BY oid DESC", (kind,))
        return [json.loads(r[0]) for r in rows]

    def by_name(self, kind: str, name: str) -> list[dict]:
        rows = self.db.execute("SELECT body FROM objects WHERE kind=? AND name=?", (kind, name))
        return [json.loads(r[0]) for r in rows]

    def rows(self, kind: str, where: str = "", args: tuple = (), full: bool = False):
        """(oid, uid, gid, perms, state, pool_xml or, *full*, full_xml) rows, highest id first, without
        decoding bodies."""
        sql = f"SELECT oid, uid, gid, perms, state, {'full_xml' if full else 'pool_xml'} FROM objects WHERE kind=?"
        if where:
            sql += " AND " + where
        return self.db.execute(sql + " ORDER BY oid DESC", (kind, *args)).fetchall()

    def qsums(self, kind: str):
        """(uid, gid, quota summary) of every object of *kind* that has one."""
        rows = self.db.execute("SELECT uid, gid, qsum FROM objects WHERE kind=? AND qsum IS NOT NULL", (kind,))
        return [(u, g, json.loads(q)) for u, g, q in rows]

    def next_id(self, kind: str, first: int = 0) -> int:
        row = self.db.execute("SELECT next FROM seq WHERE kind=?", (kind,)).fetchone()
        oid = row[0] if row else first
        self.db.execute("INSERT OR REPLACE INTO seq (kind, next) VALUES (?, ?)", (kind, oid + 1))
        return oid

    def seed(self, kind: str, first: int):
        """Ids of *kind* start at *first* (oned reserves the low ones for system objects)."""
        self.db.execute("INSERT OR IGNORE INTO seq (kind, next) VALUES (?, ?)", (kind, first))

    def count(self, kind: str) -> int:
        return self.db.execute("SELECT COUNT(*) FROM objects WHERE kind=?", (kind,)).fetchone()[0]

    # -- ACL rules -----------------------------------------------------------
    def acl_rules(self) -> list[tuple[int, int, int, int, int]]:
        return self.db.execute("SELECT id, user, resource, rights, zone FROM acl ORDER BY user, id").fetchall()

    def acl_add(self, user: int, resource: int, rights: int, zone: int) -> int:
        rid = self.next_id("acl")
        self.db.execute("INSERT INTO acl VALUES (?,?,?,?,?)", (rid, user, resource, rights, zone))
        return rid

    def acl_find(self, user: int, resource: int, rights: int, zone: int):
        row = self.db.execute(
            "SELECT id FROM acl WHERE user=? AND resource=? AND rights=? AND zone=?",
            (user, resource, rights, zone),
        ).fetchone()
        return row[0] if row else None

    def acl_delete(self, rid: int) -> bool:
        return self.db.execute("DELETE FROM acl WHERE id=?", (rid,)).rowcount > 0

    # -- work the drivers still owe (state changes after an answer) ----------
    def pending_set(self, kind: str, oid: int, due: float):
        self.db.execute("INSERT OR REPLACE INTO pending VALUES (?,?,?)", (kind, oid, due))

    def pending_clear(self, kind: str, oid: int):
        self.db.execute("DELETE FROM pending WHERE kind=? AND oid=?", (kind, oid))

    def pending_due(self, now: float) -> list[tuple[str, int]]:
        return self.db.execute("SELECT kind, oid FROM pending WHERE due <= ? ORDER BY due", (now,)).fetchall()

    def pending_next(self) -> float | None:
        return self.db.execute("SELECT MIN(due) FROM pending").fetchone()[0]

    def integrity_ok(self) -> bool:
        return self.db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
