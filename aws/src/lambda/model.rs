//! Tables taken from botocore's Lambda service model (`botocore/data/lambda/2015-03-31/service-2.json`,
//! botocore 1.44.8): every operation with its HTTP method and request URI, and every error
//! shape with its HTTP status and the spelling of its message member.

/// Every operation of the Lambda API: name, HTTP method, request URI (path template, and the
/// query the operation requires, if any).
pub const OPERATIONS: &[(&str, &str, &str)] = &[
    (
        "AddLayerVersionPermission",
        "POST",
        "/2018-10-31/layers/{LayerName}/versions/{VersionNumber}/policy",
    ),
    (
        "AddPermission",
        "POST",
        "/2015-03-31/functions/{FunctionName}/policy",
    ),
    (
        "CheckpointDurableExecution",
        "POST",
        "/2025-12-01/durable-executions/{DurableExecutionArn}/checkpoint",
    ),
    (
        "CreateAlias",
        "POST",
        "/2015-03-31/functions/{FunctionName}/aliases",
    ),
    (
        "CreateCapacityProvider",
        "POST",
        "/2025-11-30/capacity-providers",
    ),
    (
        "CreateCodeSigningConfig",
        "POST",
        "/2020-04-22/code-signing-configs",
    ),
    (
        "CreateEventSourceMapping",
        "POST",
        "/2015-03-31/event-source-mappings",
    ),
    ("CreateFunction", "POST", "/2015-03-31/functions"),
    (
        "CreateFunctionUrlConfig",
        "POST",
        "/2021-10-31/functions/{FunctionName}/url",
    ),
    (
        "DeleteAlias",
        "DELETE",
        "/2015-03-31/functions/{FunctionName}/aliases/{Name}",
    ),
    (
        "DeleteCapacityProvider",
        "DELETE",
        "/2025-11-30/capacity-providers/{CapacityProviderName}",
    ),
    (
        "DeleteCodeSigningConfig",
        "DELETE",
        "/2020-04-22/code-signing-configs/{CodeSigningConfigArn}",
    ),
    (
        "DeleteDurableExecution",
        "DELETE",
        "/2025-12-01/durable-executions/{DurableExecutionArn}",
    ),
    (
        "DeleteEventSourceMapping",
        "DELETE",
        "/2015-03-31/event-source-mappings/{UUID}",
    ),
    (
        "DeleteFunction",
        "DELETE",
        "/2015-03-31/functions/{FunctionName}",
    ),
    (
        "DeleteFunctionCodeSigningConfig",
        "DELETE",
        "/2020-06-30/functions/{FunctionName}/code-signing-config",
    ),
    (
        "DeleteFunctionConcurrency",
        "DELETE",
        "/2017-10-31/functions/{FunctionName}/concurrency",
    ),
    (
        "DeleteFunctionEventInvokeConfig",
        "DELETE",
        "/2019-09-25/functions/{FunctionName}/event-invoke-config",
    ),
    (
        "DeleteFunctionUrlConfig",
        "DELETE",
        "/2021-10-31/functions/{FunctionName}/url",
    ),
    (
        "DeleteLayerVersion",
        "DELETE",
        "/2018-10-31/layers/{LayerName}/versions/{VersionNumber}",
    ),
    (
        "DeleteProvisionedConcurrencyConfig",
        "DELETE",
        "/2019-09-30/functions/{FunctionName}/provisioned-concurrency",
    ),
    (
        "DeleteResourcePolicy",
        "DELETE",
        "/2026-07-09/resource-policy/{ResourceArn}",
    ),
    ("GetAccountSettings", "GET", "/2016-08-19/account-settings"),
    (
        "GetAlias",
        "GET",
        "/2015-03-31/functions/{FunctionName}/aliases/{Name}",
    ),
    (
        "GetCapacityProvider",
        "GET",
        "/2025-11-30/capacity-providers/{CapacityProviderName}",
    ),
    (
        "GetCodeSigningConfig",
        "GET",
        "/2020-04-22/code-signing-configs/{CodeSigningConfigArn}",
    ),
    (
        "GetDurableExecution",
        "GET",
        "/2025-12-01/durable-executions/{DurableExecutionArn}",
    ),
    (
        "GetDurableExecutionHistory",
        "GET",
        "/2025-12-01/durable-executions/{DurableExecutionArn}/history",
    ),
    (
        "GetDurableExecutionState",
        "GET",
        "/2025-12-01/durable-executions/{DurableExecutionArn}/state",
    ),
    (
        "GetEventSourceMapping",
        "GET",
        "/2015-03-31/event-source-mappings/{UUID}",
    ),
    ("GetFunction", "GET", "/2015-03-31/functions/{FunctionName}"),
    (
        "GetFunctionCodeSigningConfig",
        "GET",
        "/2020-06-30/functions/{FunctionName}/code-signing-config",
    ),
    (
        "GetFunctionConcurrency",
        "GET",
        "/2019-09-30/functions/{FunctionName}/concurrency",
    ),
    (
        "GetFunctionConfiguration",
        "GET",
        "/2015-03-31/functions/{FunctionName}/configuration",
    ),
    (
        "GetFunctionEventInvokeConfig",
        "GET",
        "/2019-09-25/functions/{FunctionName}/event-invoke-config",
    ),
    (
        "GetFunctionRecursionConfig",
        "GET",
        "/2024-08-31/functions/{FunctionName}/recursion-config",
    ),
    (
        "GetFunctionScalingConfig",
        "GET",
        "/2025-11-30/functions/{FunctionName}/function-scaling-config",
    ),
    (
        "GetFunctionUrlConfig",
        "GET",
        "/2021-10-31/functions/{FunctionName}/url",
    ),
    (
        "GetLayerVersion",
        "GET",
        "/2018-10-31/layers/{LayerName}/versions/{VersionNumber}",
    ),
    (
        "GetLayerVersionByArn",
        "GET",
        "/2018-10-31/layers?find=LayerVersion",
    ),
    (
        "GetLayerVersionPolicy",
        "GET",
        "/2018-10-31/layers/{LayerName}/versions/{VersionNumber}/policy",
    ),
    (
        "GetPolicy",
        "GET",
        "/2015-03-31/functions/{FunctionName}/policy",
    ),
    (
        "GetProvisionedConcurrencyConfig",
        "GET",
        "/2019-09-30/functions/{FunctionName}/provisioned-concurrency",
    ),
    (
        "GetResourcePolicy",
        "GET",
        "/2026-07-09/resource-policy/{ResourceArn}",
    ),
    (
        "GetRuntimeManagementConfig",
        "GET",
        "/2021-07-20/functions/{FunctionName}/runtime-management-config",
    ),
    (
        "Invoke",
        "POST",
        "/2015-03-31/functions/{FunctionName}/invocations",
    ),
    (
        "InvokeAsync",
        "POST",
        "/2014-11-13/functions/{FunctionName}/invoke-async",
    ),
    (
        "InvokeWithResponseStream",
        "POST",
        "/2021-11-15/functions/{FunctionName}/response-streaming-invocations",
    ),
    (
        "ListAliases",
        "GET",
        "/2015-03-31/functions/{FunctionName}/aliases",
    ),
    (
        "ListCapacityProviders",
        "GET",
        "/2025-11-30/capacity-providers",
    ),
    (
        "ListCodeSigningConfigs",
        "GET",
        "/2020-04-22/code-signing-configs",
    ),
    (
        "ListDurableExecutionsByFunction",
        "GET",
        "/2025-12-01/functions/{FunctionName}/durable-executions",
    ),
    (
        "ListEventSourceMappings",
        "GET",
        "/2015-03-31/event-source-mappings",
    ),
    (
        "ListFunctionEventInvokeConfigs",
        "GET",
        "/2019-09-25/functions/{FunctionName}/event-invoke-config/list",
    ),
    (
        "ListFunctionUrlConfigs",
        "GET",
        "/2021-10-31/functions/{FunctionName}/urls",
    ),
    (
        "ListFunctionVersionsByCapacityProvider",
        "GET",
        "/2025-11-30/capacity-providers/{CapacityProviderName}/function-versions",
    ),
    ("ListFunctions", "GET", "/2015-03-31/functions"),
    (
        "ListFunctionsByCodeSigningConfig",
        "GET",
        "/2020-04-22/code-signing-configs/{CodeSigningConfigArn}/functions",
    ),
    (
        "ListLayerVersions",
        "GET",
        "/2018-10-31/layers/{LayerName}/versions",
    ),
    ("ListLayers", "GET", "/2018-10-31/layers"),
    (
        "ListProvisionedConcurrencyConfigs",
        "GET",
        "/2019-09-30/functions/{FunctionName}/provisioned-concurrency?List=ALL",
    ),
    ("ListTags", "GET", "/2017-03-31/tags/{Resource}"),
    (
        "ListVersionsByFunction",
        "GET",
        "/2015-03-31/functions/{FunctionName}/versions",
    ),
    (
        "PauseDurableExecution",
        "POST",
        "/2025-12-01/durable-executions/{DurableExecutionArn}/pause",
    ),
    (
        "PublishLayerVersion",
        "POST",
        "/2018-10-31/layers/{LayerName}/versions",
    ),
    (
        "PublishVersion",
        "POST",
        "/2015-03-31/functions/{FunctionName}/versions",
    ),
    (
        "PutFunctionCodeSigningConfig",
        "PUT",
        "/2020-06-30/functions/{FunctionName}/code-signing-config",
    ),
    (
        "PutFunctionConcurrency",
        "PUT",
        "/2017-10-31/functions/{FunctionName}/concurrency",
    ),
    (
        "PutFunctionEventInvokeConfig",
        "PUT",
        "/2019-09-25/functions/{FunctionName}/event-invoke-config",
    ),
    (
        "PutFunctionRecursionConfig",
        "PUT",
        "/2024-08-31/functions/{FunctionName}/recursion-config",
    ),
    (
        "PutFunctionScalingConfig",
        "PUT",
        "/2025-11-30/functions/{FunctionName}/function-scaling-config",
    ),
    (
        "PutProvisionedConcurrencyConfig",
        "PUT",
        "/2019-09-30/functions/{FunctionName}/provisioned-concurrency",
    ),
    (
        "PutResourcePolicy",
        "PUT",
        "/2026-07-09/resource-policy/{ResourceArn}",
    ),
    (
        "PutRuntimeManagementConfig",
        "PUT",
        "/2021-07-20/functions/{FunctionName}/runtime-management-config",
    ),
    (
        "RemoveLayerVersionPermission",
        "DELETE",
        "/2018-10-31/layers/{LayerName}/versions/{VersionNumber}/policy/{StatementId}",
    ),
    (
        "RemovePermission",
        "DELETE",
        "/2015-03-31/functions/{FunctionName}/policy/{StatementId}",
    ),
    (
        "ResumeDurableExecution",
        "POST",
        "/2025-12-01/durable-executions/{DurableExecutionArn}/resume",
    ),
    (
        "SendDurableExecutionCallbackFailure",
        "POST",
        "/2025-12-01/durable-execution-callbacks/{CallbackId}/fail",
    ),
    (
        "SendDurableExecutionCallbackHeartbeat",
        "POST",
        "/2025-12-01/durable-execution-callbacks/{CallbackId}/heartbeat",
    ),
    (
        "SendDurableExecutionCallbackSuccess",
        "POST",
        "/2025-12-01/durable-execution-callbacks/{CallbackId}/succeed",
    ),
    (
        "StopDurableExecution",
        "POST",
        "/2025-12-01/durable-executions/{DurableExecutionArn}/stop",
    ),
    ("TagResource", "POST", "/2017-03-31/tags/{Resource}"),
    ("UntagResource", "DELETE", "/2017-03-31/tags/{Resource}"),
    (
        "UpdateAlias",
        "PUT",
        "/2015-03-31/functions/{FunctionName}/aliases/{Name}",
    ),
    (
        "UpdateCapacityProvider",
        "PUT",
        "/2025-11-30/capacity-providers/{CapacityProviderName}",
    ),
    (
        "UpdateCodeSigningConfig",
        "PUT",
        "/2020-04-22/code-signing-configs/{CodeSigningConfigArn}",
    ),
    (
        "UpdateEventSourceMapping",
        "PUT",
        "/2015-03-31/event-source-mappings/{UUID}",
    ),
    (
        "UpdateFunctionCode",
        "PUT",
        "/2015-03-31/functions/{FunctionName}/code",
    ),
    (
        "UpdateFunctionConfiguration",
        "PUT",
        "/2015-03-31/functions/{FunctionName}/configuration",
    ),
    (
        "UpdateFunctionEventInvokeConfig",
        "POST",
        "/2019-09-25/functions/{FunctionName}/event-invoke-config",
    ),
    (
        "UpdateFunctionUrlConfig",
        "PUT",
        "/2021-10-31/functions/{FunctionName}/url",
    ),
];

/// Every error shape the Lambda model declares: code, HTTP status, and the message member's
/// name (`message` or `Message`).
pub const ERRORS: &[(&str, u16, &str)] = &[
    ("AliasLimitExceededException", 400, "message"),
    ("CallbackTimeoutException", 400, "Message"),
    ("CapacityProviderLimitExceededException", 400, "message"),
    ("CodeArtifactUserDeletedException", 409, "message"),
    ("CodeArtifactUserFailedException", 409, "message"),
    ("CodeArtifactUserPendingException", 409, "message"),
    ("CodeSigningConfigNotFoundException", 404, "Message"),
    ("CodeStorageExceededException", 400, "message"),
    ("CodeVerificationFailedException", 400, "Message"),
    ("DurableExecutionAlreadyStartedException", 409, "Message"),
    ("EC2AccessDeniedException", 502, "Message"),
    ("EC2ThrottledException", 502, "Message"),
    ("EC2UnexpectedException", 502, "Message"),
    ("EFSIOException", 410, "Message"),
    ("EFSMountConnectivityException", 408, "Message"),
    ("EFSMountFailureException", 403, "Message"),
    ("EFSMountTimeoutException", 408, "Message"),
    ("ENILimitReachedException", 502, "Message"),
    ("ENINotReadyException", 502, "Message"),
    (
        "FunctionVersionsPerCapacityProviderLimitExceededException",
        400,
        "message",
    ),
    ("InvalidCodeSignatureException", 400, "Message"),
    ("InvalidParameterValueException", 400, "message"),
    ("InvalidRequestContentException", 400, "message"),
    ("InvalidRuntimeException", 502, "Message"),
    ("InvalidSecurityGroupIDException", 502, "Message"),
    ("InvalidSubnetIDException", 502, "Message"),
    ("InvalidZipFileException", 502, "Message"),
    ("KMSAccessDeniedException", 502, "Message"),
    ("KMSDisabledException", 502, "Message"),
    ("KMSInvalidStateException", 502, "Message"),
    ("KMSNotFoundException", 502, "Message"),
    ("ModeNotSupportedException", 400, "message"),
    ("NoPublishedVersionException", 400, "Message"),
    ("PolicyLengthExceededException", 400, "message"),
    ("PreconditionFailedException", 412, "message"),
    (
        "ProvisionedConcurrencyConfigNotFoundException",
        404,
        "message",
    ),
    ("PublicPolicyException", 400, "Message"),
    ("RecursiveInvocationException", 400, "Message"),
    ("RequestTooLargeException", 413, "message"),
    ("ResourceConflictException", 409, "message"),
    ("ResourceInUseException", 400, "Message"),
    ("ResourceNotFoundException", 404, "Message"),
    ("ResourceNotReadyException", 502, "message"),
    ("RuntimeAliasDeletedException", 409, "message"),
    ("RuntimeVersionDeletedException", 409, "message"),
    ("S3FilesMountConnectivityException", 408, "Message"),
    ("S3FilesMountFailureException", 403, "Message"),
    ("S3FilesMountTimeoutException", 408, "Message"),
    ("SerializedRequestEntityTooLargeException", 413, "message"),
    ("ServiceException", 500, "Message"),
    ("ServiceQuotaExceededException", 402, "Message"),
    ("SnapStartException", 400, "Message"),
    ("SnapStartNotReadyException", 409, "Message"),
    ("SnapStartRegenerationFailureException", 409, "Message"),
    ("SnapStartTimeoutException", 408, "Message"),
    ("SubnetIPAddressLimitReachedException", 502, "Message"),
    ("TooManyRequestsException", 429, "message"),
    ("UnsupportedMediaTypeException", 415, "message"),
];

/// The operation of [`OPERATIONS`] a request's method, path and query match, if any (`{Name}`
/// matches one path segment, `{Name+}` the rest; a template's query must be present).
pub fn operation_for(method: &str, path: &str, query: &str) -> Option<&'static str> {
    let matches = |template: &str| {
        let (template_path, template_query) = template.split_once('?').unwrap_or((template, ""));
        if !template_query.is_empty() && !query.split('&').any(|pair| pair == template_query) {
            return false;
        }
        let mut actual = path.trim_end_matches('/').split('/');
        for part in template_path.split('/') {
            if part.starts_with('{') && part.ends_with("+}") {
                return actual.next().is_some_and(|s| !s.is_empty());
            }
            match actual.next() {
                Some(segment) if part.starts_with('{') => {
                    if segment.is_empty() {
                        return false;
                    }
                }
                Some(segment) if segment == part => {}
                _ => return false,
            }
        }
        actual.next().is_none()
    };
    // Templates that require a query first: they are the more specific.
    OPERATIONS
        .iter()
        .filter(|(_, m, t)| *m == method && t.contains('?'))
        .chain(
            OPERATIONS
                .iter()
                .filter(|(_, m, t)| *m == method && !t.contains('?')),
        )
        .find(|(_, _, template)| matches(template))
        .map(|(name, _, _)| *name)
}

#[cfg(test)]
mod tests {
    use super::operation_for;

    #[test]
    fn requests_map_to_their_operations() {
        assert_eq!(
            operation_for("POST", "/2015-03-31/functions/f/policy", ""),
            Some("AddPermission")
        );
        assert_eq!(
            operation_for("GET", "/2018-10-31/layers", ""),
            Some("ListLayers")
        );
        assert_eq!(
            operation_for("GET", "/2018-10-31/layers", "find=LayerVersion&Arn=x"),
            Some("GetLayerVersionByArn")
        );
        assert_eq!(
            operation_for(
                "GET",
                "/2019-09-30/functions/f/provisioned-concurrency",
                "List=ALL"
            ),
            Some("ListProvisionedConcurrencyConfigs")
        );
        assert_eq!(operation_for("GET", "/nothing/here", ""), None);
        assert_eq!(operation_for("PATCH", "/2015-03-31/functions", ""), None);
    }
}
