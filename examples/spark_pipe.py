"""Scores a Parquet file on Spark (local mode) with a saved dagmm-tui checkpoint.

    python3 examples/spark_pipe.py DAGMM_TUI_BINARY MODEL_DIR DATA.parquet OUT.txt

Each partition's rows go to one `dagmm-tui score --model MODEL_DIR --no-header -` process
through `RDD.pipe`, as JSON lines (`DataFrame.toJSON`: the column names travel with every
row, so the column order does not matter); every output line is `row,score` for the input
row in the same place (`row` counts within the partition), so the scores zip back onto the
rows. They are written to OUT.txt in the file's row order, one per line.

Spark writes a null as an absent key, which dagmm-tui reads as a missing value: hence
`--missing mean`, the policy a Parquet-trained model uses for nulls. Timestamps are sent as
seconds since 1970, which is how dagmm-tui reads a Parquet timestamp. On a cluster, ship the
binary and the checkpoint directory to the executors (`--files`, `--archives`) and name
them as the executors see them.
"""
import shlex
import sys

from pyspark.sql import SparkSession, functions
from pyspark.sql.types import TimestampNTZType, TimestampType

binary, model, data, out = sys.argv[1:5]
spark = (
    SparkSession.builder.master("local[2]")
    .appName("dagmm-tui score")
    .config("spark.ui.enabled", "false")
    .config("spark.sql.session.timeZone", "UTC")
    .getOrCreate()
)
frame = spark.read.parquet(data)
for field in frame.schema.fields:
    if isinstance(field.dataType, (TimestampType, TimestampNTZType)):
        micros = functions.unix_micros(functions.col(field.name).cast("timestamp"))
        frame = frame.withColumn(field.name, micros / 1e6)
# Spread over three partitions (three scoring processes), each row tagged with its place
# in the file; cached, so the rows sent to the pipe and the tags zipped back are the same.
rows = frame.withColumn("_row", functions.monotonically_increasing_id()).repartition(3).cache()
command = [binary, "score", "--model", model, "--no-header", "--missing", "mean", "-"]
scored = rows.toJSON().pipe(shlex.join(command), checkCode=True)
scores = rows.rdd.map(lambda row: row["_row"]).zip(scored.map(lambda line: line.split(",")[1]))
in_file_order = scores.sortByKey().values().collect()
with open(out, "w") as handle:
    handle.write("\n".join(in_file_order) + "\n")
spark.stop()
