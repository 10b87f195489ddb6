"""Writes sample_data/conn.log: a synthetic Zeek conn.log (4,000 connections, seed 7).

Run once with the Python standard library (`python3 sample_data/make_conn_log.py`); the
workbench reads the file that is committed, nothing is generated at run time. The traffic
is an office network's day: web, DNS, mail, SSH and NTP from 60 local hosts. About 2 % of the
rows are what an analyst would want to find: a port scan (many short rejected or unanswered
connections from one host), two long uploads to an outside host (exfiltration: megabytes
sent, little received) and DNS tunnelling (many large UDP/53 exchanges with one resolver).
"""
import random

rng = random.Random(7)
FIELDS = ("ts uid id.orig_h id.orig_p id.resp_h id.resp_p proto service duration orig_bytes "
          "resp_bytes conn_state local_orig local_resp missed_bytes history orig_pkts "
          "orig_ip_bytes resp_pkts resp_ip_bytes tunnel_parents").split()
TYPES = ("time string addr port addr port enum string interval count count string bool bool "
         "count string count count count count set[string]").split()
LOCAL = [f"10.0.{i // 20}.{10 + i % 20}" for i in range(60)]
SERVERS = {"http": [f"93.184.{i}.{j}" for i in range(4) for j in (10, 34)],
           "ssl": [f"142.250.{i}.{j}" for i in range(6) for j in (14, 78)],
           "dns": ["10.0.9.53"], "smtp": ["10.0.9.25"], "ssh": ["10.0.9.22"], "ntp": ["10.0.9.123"]}
PORTS = {"http": 80, "ssl": 443, "dns": 53, "smtp": 25, "ssh": 22, "ntp": 123}


def uid():
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
    return "C" + "".join(rng.choice(alphabet) for _ in range(17))


def row(ts, orig, resp, rport, proto, service, duration, ob, rb, state, history, op, rp):
    unset = "-"
    return [f"{ts:.6f}", uid(), orig, str(rng.randint(32768, 60999)), resp, str(rport), proto,
            service or unset, unset if duration is None else f"{duration:.6f}",
            unset if ob is None else str(ob), unset if rb is None else str(rb), state, "T",
            "T" if resp.startswith("10.") else "F", "0", history, str(op),
            str(op * 40 + (ob or 0)), str(rp), str(rp * 40 + (rb or 0)), "(empty)"]


def normal(ts):
    service = rng.choices(list(PORTS), weights=[25, 35, 25, 5, 5, 5])[0]
    orig, resp = rng.choice(LOCAL), rng.choice(SERVERS[service])
    if service == "dns":
        ob, rb = rng.randint(30, 70), rng.randint(45, 300)
        return row(ts, orig, resp, 53, "udp", "dns", rng.uniform(0.001, 0.08), ob, rb, "SF", "Dd", 1, 1)
    if service == "ntp":
        return row(ts, orig, resp, 123, "udp", "ntp", rng.uniform(0.001, 0.05), 48, 48, "SF", "Dd", 1, 1)
    if rng.random() < 0.03:  # an ordinary failed attempt: no reply, nothing measured
        return row(ts, orig, resp, PORTS[service], "tcp", None, None, None, None, "S0", "S", 1, 0)
    scale = {"http": 2_000, "ssl": 6_000, "smtp": 4_000, "ssh": 3_000}[service]
    ob = int(rng.lognormvariate(6.0, 0.8))
    rb = int(rng.lognormvariate(0, 1.0) * scale)
    op, rp = max(3, ob // 500 + 3), max(3, rb // 1400 + 3)
    return row(ts, orig, resp, PORTS[service], "tcp", service, rng.lognormvariate(-0.5, 1.2),
               ob, rb, "SF", "ShADadFf", op, rp)


rows = []
ts = 1_700_000_000.0
for i in range(3920):
    ts += rng.expovariate(1 / 20)
    rows.append(normal(ts))
scanner, victim = "10.0.2.17", "10.0.9.22"
for port in rng.sample(range(1, 1024), 50):
    state = rng.choice(["REJ", "S0"])
    rows.append(row(ts + rng.uniform(0, 3600), scanner, victim, port, "tcp", None,
                    None if state == "S0" else 0.000_5, None if state == "S0" else 0,
                    None if state == "S0" else 0, state, "Sr" if state == "REJ" else "S", 1,
                    1 if state == "REJ" else 0))
for _ in range(2):
    ob = rng.randint(80_000_000, 200_000_000)
    rows.append(row(ts + rng.uniform(0, 3600), "10.0.1.12", "185.220.101.7", 443, "tcp", "ssl",
                    rng.uniform(1800, 5400), ob, rng.randint(20_000, 90_000), "SF", "ShADadFf",
                    ob // 1400, 900))
for _ in range(28):
    ob = rng.randint(900, 1400)
    rows.append(row(ts + rng.uniform(0, 3600), "10.0.0.23", "10.0.9.53", 53, "udp", "dns",
                    rng.uniform(0.2, 0.9), ob, rng.randint(900, 1400), "SF", "Dd", 1, 1))
rows.sort(key=lambda r: float(r[0]))

with open("sample_data/conn.log", "w") as out:
    out.write("#separator \\x09\n#set_separator\t,\n#empty_field\t(empty)\n#unset_field\t-\n")
    out.write("#path\tconn\n#open\t2023-11-14-22-13-20\n")
    out.write("#fields\t" + "\t".join(FIELDS) + "\n#types\t" + "\t".join(TYPES) + "\n")
    for r in rows:
        out.write("\t".join(r) + "\n")
    out.write("#close\t2023-11-15-21-59-58\n")
