using Conveyor.Server.Security;

namespace Conveyor.Server.Http;

/// <summary>Liveness (<c>/healthz</c>: the process serves HTTP) and readiness (<c>/readyz</c>: the store answers).</summary>
internal static class HealthEndpoints
{
    private static readonly TimeSpan ReadyTimeout = TimeSpan.FromSeconds(5);

    public static void Map(IEndpointRouteBuilder app)
    {
        app.MapGet("/healthz", () => Results.Text("ok\n"))
            .WithName("health").WithTags("health").WithSummary("Liveness: the process serves HTTP").Produces<string>(200, "text/plain");
        app.MapGet("/readyz", ReadyAsync)
            .WithName("ready").WithTags("health").WithSummary("Readiness: the store answers").Produces<string>(200, "text/plain").ProducesProblem(503);
        app.MapGet("/v1/auth/whoami", (HttpContext context, ServerOptions options) => Results.Json(new Dictionary<string, object>
            {
                ["role"] = AccessControlMiddleware.RoleOf(context).ToWire(),
                ["keys_required"] = options.ApiKeys.Count > 0,
            }))
            .Requires(Access.Read).WithName("whoami").WithTags("health")
            .WithSummary("The role of the presented API key (admin when the server has no keys)")
            .Produces<Dictionary<string, object>>(200).ProducesProblem(401);
    }

    private static async Task<IResult> ReadyAsync(IJobStore store, CancellationToken ct)
    {
        // Migrations run before the server listens, so a store that answers a read is a migrated store.
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
        timeout.CancelAfter(ReadyTimeout);
        try
        {
            await store.QueueListAsync(timeout.Token);
            return Results.Text("ready\n");
        }
        catch (Exception e) when (e is StoreUnavailableException or OperationCanceledException or TimeoutException)
        {
            return Problems.Unavailable($"The store is not answering: {e.Message}");
        }
    }
}
