

def test_compiled_programs_keep_the_most_recently_used():
    """At most ``limit`` programs: a new one drops the least recently used; a hit refreshes it."""
    from bayes_scaling._jax_setup import CompiledPrograms

    built = []
    cache = CompiledPrograms(limit=2)

    def get(key):
        return cache.get_or_build(key, lambda: built.append(key) or f"program {key}")

    assert get("a") == "program a" and get("b") == "program b" and get("a") == "program a"
    get("c")  # drops "b", the least recently used
    assert list(cache) == ["a", "c"] and built == ["a", "b", "c"]
    get("b")
    assert list(cache) == ["c", "b"] and built == ["a", "b", "c", "b"]
