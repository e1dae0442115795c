"""Operations tooling: the RayService generator, the deploy CLI, dashboards as code, the local
stack."""
