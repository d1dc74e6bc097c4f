"""The index of a user's EC2 attributes that econe keeps in OpenNebula, for first listings.

oned's short pool answer (``VirtualMachine::to_xml_short``) carries none of a VM's ``EC2_*`` user
template attributes, nor its ``OS/ARCH``. A server that has not read them yet (just started, or
another instance behind the same proxy) would read the extended pool answer for every VM, about
three times the cost of the listing itself. Instead it reads this index: OpenNebula documents of
type ``TYPE`` owned by the user and written with the user's session, one per SHARD VM ids (named
``ec2-index-<id // SHARD>``: oned writes a whole document again at each update, so a change costs a
bounded document however many VMs the user has had), with one attribute per VM:
``VM_<id>="[arch, {EC2_* attributes}]"`` (JSON). One call reads them all.

The VMs stay the truth and the index is a cache of them. econe writes an entry when it sees a VM's
attributes change (the actions that change them read the VM again) and after each read of the
extended answer; a first listing served from the index reads that answer at once in the background
(`Gateway.verify_later`), so a change made outside econe shows from the next listing on.

Pure functions: the gateway makes the calls."""

from __future__ import annotations

import json

from one import template as tpl

from .objects import xml

TYPE = 1201  # the document type of the index (OneFlow's are 100 and 101)
PREFIX = "ec2-index-"  # a document's NAME: PREFIX and its shard
SHARD = 1000  # VM ids per document
PRUNE_AFTER = 100  # entries of VMs gone from the listing the index keeps before it is written anew
MAX_ENTRIES = 20_000  # the newest VMs' entries an index keeps; older VMs are read from oned
MAX_BYTES = 8 * 2**20  # a larger answer (a user's own writing) is no index

Entry = tuple[dict[str, str], str]  # (EC2 attributes, OS/ARCH)


def _key(vmid: int) -> str:
    return f"VM_{vmid}"


def _value(entry: Entry) -> str:
    attrs, arch = entry
    return json.dumps([arch, attrs], sort_keys=True, separators=(",", ":"))  # ASCII: oned stores it as it is


def shard(vmid: int) -> int:
    return vmid // SHARD


def name(shard_no: int) -> str:
    return f"{PREFIX}{shard_no}"


def by_shard(entries: dict[int, Entry]) -> dict[int, dict[int, Entry]]:
    out: dict[int, dict[int, Entry]] = {}
    for vmid, entry in entries.items():
        out.setdefault(shard(vmid), {})[vmid] = entry
    return out


def template(entries: dict[int, Entry], shard_no: int | None = None) -> str:
    """Template text of *entries* (with the NAME of shard *shard_no*, for an allocate). An entry oned
    could not store (a value with ``]]>``) is left out: its VM is read from oned instead."""
    pairs = [("NAME", name(shard_no))] if shard_no is not None else []
    for vmid, entry in sorted(entries.items()):
        value = _value(entry)
        try:
            tpl.quote(value)
        except tpl.UnstorableValue:
            continue
        pairs.append((_key(vmid), value))
    return tpl.serialize(pairs)


def _entry(text: str) -> Entry | None:
    """An entry as written by `template`; None for anything else (the user owns the document)."""
    try:
        arch, attrs = json.loads(text)
    except (ValueError, TypeError, RecursionError):  # the user's own writing: anything
        return None
    if not isinstance(arch, str) or not isinstance(attrs, dict):
        return None
    if not all(isinstance(k, str) and k.startswith("EC2_") and isinstance(v, str) for k, v in attrs.items()):
        return None
    return attrs, arch


def parse(pool: str) -> tuple[dict[int, int], dict[int, Entry], list[int]]:
    """From a DOCUMENT_POOL answer: each shard's document (the lowest id of the user's documents of
    its name), their entries, and the ids of the other such documents (two servers' first writes at
    once). An answer larger than MAX_BYTES is no index (ValueError)."""
    if len(pool) > MAX_BYTES:
        raise ValueError(f"an index document of {len(pool)} bytes")
    docs: dict[int, int] = {}
    others, entries = [], {}
    for doc_id, doc in sorted((int(d.findtext("ID")), d) for d in xml(pool).iterfind("DOCUMENT")):
        shard_no = _number(doc.findtext("NAME") or "", PREFIX)
        if shard_no is None:
            continue
        if shard_no in docs:
            others.append(doc_id)
            continue
        docs[shard_no] = doc_id
        for attr in doc.iterfind("TEMPLATE/*"):
            vmid = _number(attr.tag, "VM_")
            if vmid is not None and shard(vmid) == shard_no and len(attr) == 0:
                entry = _entry(attr.text or "")
                if entry is not None:
                    entries[vmid] = entry
    return docs, entries, others


def _number(text: str, prefix: str) -> int | None:
    """The id after *prefix* as econe writes it (ASCII digits, no leading zero: one name per id), or None."""
    digits = text[len(prefix) :] if text.startswith(prefix) else ""
    if not (digits.isascii() and digits.isdigit() and len(digits) <= 10) or str(int(digits)) != digits:
        return None
    return int(digits)


def changed(held: dict[int, Entry], seen: dict[int, Entry]) -> dict[int, Entry]:
    """The entries of *seen* the index does not hold as they are."""
    return {vmid: entry for vmid, entry in seen.items() if held.get(vmid) != entry}


def stale(held: dict[int, Entry], listed: set[int]) -> bool:
    """Whether the index holds enough entries of VMs no longer listed to be written anew."""
    return sum(1 for vmid in held if vmid not in listed) > PRUNE_AFTER


def newest(entries: dict[int, Entry]) -> dict[int, Entry]:
    """The MAX_ENTRIES entries of the newest VMs (the highest ids)."""
    if len(entries) <= MAX_ENTRIES:
        return entries
    return {vmid: entries[vmid] for vmid in sorted(entries)[-MAX_ENTRIES:]}
