"""The index of EC2 attributes as text: what econe writes into the document is what it reads back from
oned's answer, whatever the values hold, and nothing else in the document counts."""

from __future__ import annotations

from xml.sax.saxutils import escape

from econe import attr_index
from one import template as tpl

ODD = {
    "EC2_TAGS": '{"Name": "a \\"quoted\\" \\\\ back\\\\slash", "k": "\\u00e9\\n"}',
    "EC2_KEYNAME": "key with spaces, commas ] and [brackets]",
    "EC2_INSTANCE_TYPE": "m1.small",
}


def _pool(*docs: tuple[int, str, str]) -> str:
    """A DOCUMENT_POOL answer as oned writes it: each document's template with CDATA values."""
    out = ["<DOCUMENT_POOL>"]
    for doc_id, name, text in docs:
        attrs = "".join(f"<{k}><![CDATA[{v}]]></{k}>" for k, v in tpl.parse(text) if isinstance(v, str) and k != "NAME")
        out.append(f"<DOCUMENT><ID>{doc_id}</ID><UID>2</UID><NAME>{escape(name)}</NAME><TYPE>{attr_index.TYPE}</TYPE>"
                   f"<TEMPLATE>{attrs}</TEMPLATE></DOCUMENT>")  # fmt: skip
    return "".join(out + ["</DOCUMENT_POOL>"])


def test_what_is_written_is_read_back():
    entries = {7: (ODD, "aarch64"), 12: ({}, "")}
    text = attr_index.template(entries, 0)
    assert tpl.parse(text)[0] == ("NAME", "ec2-index-0")
    assert attr_index.parse(_pool((3, "ec2-index-0", text))) == ({0: 3}, entries, [])
    far = {attr_index.SHARD * 7 + 1: (ODD, "")}
    both = _pool((3, "ec2-index-0", text), (5, "ec2-index-7", attr_index.template(far, 7)))
    assert attr_index.parse(both) == ({0: 3, 7: 5}, {**entries, **far}, [])


def test_a_value_oned_cannot_store_leaves_its_vm_out():
    entries = {1: ({"EC2_TAGS": '{"a": "]]>"}'}, "x86_64"), 2: ({}, "x86_64")}
    assert [k for k, _ in tpl.parse(attr_index.template(entries))] == ["VM_2"]


def test_only_econes_entries_of_the_lowest_document_named_so_count():
    good = attr_index.template({5: ({"EC2_KEYNAME": "k"}, "x86_64")})
    deep = "[" * 5000 + "]" * 5000
    forged = tpl.serialize([("VM_6", "not json"), ("VM_7", '["x86_64", {"OTHER": "x"}]'), ("VM_8", '[1, {}]'),
                            ("VM_9", '["x86_64", {"EC2_TAGS": 1}]'), ("VM_x", '["", {}]'), ("OTHER", "1"),
                            ("VM_10", deep), ("VM_011", '["", {}]'), ("VM_" + "9" * 4400, '["", {}]'),
                            ("VM_1001", '["", {}]')])  # fmt: skip
    docs, entries, others = attr_index.parse(
        _pool(
            (9, "ec2-index-0", good),
            (4, "ec2-index-0", good + forged),
            (2, "another tool's", good),
            (3, "ec2-index-01", good),
        )  # fmt: skip
    )
    assert (docs, others) == ({0: 4}, [9])
    assert entries == {5: ({"EC2_KEYNAME": "k"}, "x86_64")}
    assert attr_index.parse(_pool((2, "another tool's", good))) == ({}, {}, [])


def test_changed_and_stale():
    held = {1: ({}, "x86_64"), 2: ({"EC2_KEYNAME": "k"}, "")}
    assert attr_index.changed(held, {1: ({}, "x86_64"), 2: ({}, ""), 3: ({}, "")}) == {2: ({}, ""), 3: ({}, "")}
    many = {i: ({}, "") for i in range(attr_index.PRUNE_AFTER + 1)}
    assert not attr_index.stale(many, {0})
    assert attr_index.stale(many, set())


def test_the_newest_entries_are_kept_and_each_goes_to_its_shard():
    many = {i: ({}, "") for i in range(attr_index.MAX_ENTRIES + 5)}
    assert list(attr_index.newest(many)) == list(range(5, attr_index.MAX_ENTRIES + 5))
    assert attr_index.by_shard({1: ({}, ""), attr_index.SHARD + 2: ({}, "a")}) == {
        0: {1: ({}, "")},
        1: {attr_index.SHARD + 2: ({}, "a")},
    }
