"""Applications built on the tasks: `analyze` (every model over a folder of media), `serve` (REST API + page) and
`demo` (the main job on embedded data). They use the task registry and the tasks' predictors; no task imports them.
"""
