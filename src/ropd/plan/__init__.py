"""`ropd plan`: what a training run will cost in judge tokens, money, throughput and GPUs,
worked out before any endpoint is contacted (`build.build_plan`, `render.render_text`)."""
