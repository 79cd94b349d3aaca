"""The dataset build: plan, shards, workspace, resume, and the steps from generation to publish."""
