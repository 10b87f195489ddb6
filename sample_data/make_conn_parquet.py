"""Writes sample_data/conn.parquet: sample_data/conn.log as a typed Parquet file (pyarrow).

Run once (`pip install pyarrow`, then `python3 sample_data/make_conn_parquet.py`); the
committed file is what the workbench reads. Zeek's types become Parquet's: `time` a
timestamp, `count`/`port` integers, `interval` a float, `bool` a boolean, `string`/`addr`
dictionary-encoded strings; an unset field (`-`) is a null. The set column
`tunnel_parents` is left out: a nested column cannot be a feature.
"""
import pyarrow as pa
import pyarrow.parquet as pq

fields, rows = None, []
for line in open("sample_data/conn.log"):
    line = line.rstrip("\n")
    if line.startswith("#fields"):
        fields = line.split("\t")[1:]
    elif not line.startswith("#"):
        rows.append(dict(zip(fields, line.split("\t"))))


def column(name, convert):
    return [None if r[name] == "-" else convert(r[name]) for r in rows]


integers = ["id.orig_p", "id.resp_p", "orig_bytes", "resp_bytes", "missed_bytes", "orig_pkts",
            "orig_ip_bytes", "resp_pkts", "resp_ip_bytes"]
texts = ["uid", "id.orig_h", "id.resp_h", "proto", "service", "conn_state", "history"]
arrays = {"ts": pa.array(column("ts", lambda v: int(float(v) * 1e6)), pa.timestamp("us"))}
for name in fields:
    if name in integers:
        arrays[name] = pa.array(column(name, int), pa.int64())
    elif name in texts:
        arrays[name] = pa.array(column(name, str), pa.string()).dictionary_encode()
    elif name == "duration":
        arrays[name] = pa.array(column(name, float), pa.float64())
    elif name in ("local_orig", "local_resp"):
        arrays[name] = pa.array(column(name, lambda v: v == "T"), pa.bool_())
table = pa.table({name: arrays[name] for name in fields if name in arrays})
pq.write_table(table, "sample_data/conn.parquet", compression="snappy")
