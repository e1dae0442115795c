"""Plain (non-Ray) servers doing the same work as the ingress: the baseline Serve is compared to."""
