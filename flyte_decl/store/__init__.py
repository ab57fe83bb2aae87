"""Run history: an embedded SQLite store beside the config (or in $FLYTE_DECL_HOME).

- `schema`: tables and migrations, versioned by `PRAGMA user_version`
- `store`: the `Store` API (write runs and attempts, read them back, settle runs whose runner died)
- `ids`: short run and action ids (`r12`, `a3`) and did-you-mean for mistyped ones
- `recorder`: subscribes to a LocalRunner's events and answers its reuse questions (cache, recover)
"""
