//! hoist's function executor: the function registry, the warm pool scheduler, and the HTTP, Lambda Invoke and Lambda Runtime APIs.
