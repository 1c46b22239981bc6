"""Many threads calling safe_exec and jail_code at once."""

import concurrent.futures

from codejail import jail_code, safe_exec


def test_many_threads_at_once_each_get_their_own_answer(tmp_dir):
    jail_code.COMMANDS["python"].jail_parent = str(tmp_dir)
    jail_code.set_limit("REALTIME", 20)

    def one(i):
        globs = {"i": i, "b": b"x" * (i % 7)}
        safe_exec.safe_exec("sq = i * i\nblen = len(b)\nimport os\nwhere = os.getcwd()", globs, slug="t%d" % i)
        res = jail_code.jail_code("python", "import sys; print(sys.argv[1])", argv=[str(i)])
        return i, globs, res.stdout

    with concurrent.futures.ThreadPoolExecutor(max_workers=16) as pool:
        results = list(pool.map(one, range(48)))
    wheres = set()
    for i, globs, stdout in results:
        assert globs["sq"] == i * i and globs["blen"] == i % 7 and stdout == b"%d\n" % i
        wheres.add(globs["where"])
    assert len(wheres) == 48, "two calls shared a jail directory"
    assert list(tmp_dir.iterdir()) == [], "jail directories were left behind"
