"""jacscale-kubernetes: deploy target "kubernetes" and image registry "dockerhub"."""
