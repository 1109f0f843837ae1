namespace Conveyor.Server.Security;

/// <summary>Endpoint metadata: the access a route needs. Routes without it (health) are open.</summary>
public sealed record RequiresAccess(Access Access);

/// <summary>
/// Checks <c>Authorization: Bearer &lt;key&gt;</c> against the configured keys when there are any: 401 without a
/// known key, 403 when the key's role does not grant the route's access. With no keys configured every request passes
/// (the server then listens on loopback only, unless --allow-anonymous).
/// </summary>
public sealed class AccessControlMiddleware(RequestDelegate next, ServerOptions options)
{
    /// <summary>The role of the request's key (admin when no keys are configured), for routes that adapt to it.</summary>
    public static ApiKeyRole RoleOf(HttpContext context) =>
        context.Items.TryGetValue(typeof(ApiKeyRole), out var role) && role is ApiKeyRole known ? known : ApiKeyRole.Admin;

    public Task InvokeAsync(HttpContext context)
    {
        if (options.ApiKeys.Count == 0) return next(context);
        var required = context.GetEndpoint()?.Metadata.GetMetadata<RequiresAccess>();
        if (required is null) return next(context);
        var header = context.Request.Headers.Authorization.ToString();
        if (!header.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase))
            return Deny(context, 401, "Unauthorized", "This server needs an API key: send it as 'Authorization: Bearer <key>'.");
        var role = ApiKey.Find(options.ApiKeys, header["Bearer ".Length..].Trim());
        if (role is null)
            return Deny(context, 401, "Unauthorized", "The API key is not one this server knows.");
        context.Items[typeof(ApiKeyRole)] = role.Value;
        if (!role.Value.Allows(required.Access))
            return Deny(context, 403, "Forbidden", Forbidden(role.Value, required.Access));
        return next(context);
    }

    /// <summary>Why a role may not do something, and which roles may.</summary>
    public static string Forbidden(ApiKeyRole role, Access access) =>
        $"A {role.ToWire()} key may not {Describe(access)}; use a key with a role that may ({RolesFor(access)}).";

    private static string Describe(Access access) => access switch
    {
        Access.Enqueue => "enqueue jobs",
        Access.Read => "read jobs, queues or stats",
        Access.Work => "lease or finish jobs",
        _ => "cancel, retry, pause or resume",
    };

    private static string RolesFor(Access access) =>
        string.Join(" or ", Enum.GetValues<ApiKeyRole>().Where(r => r.Allows(access)).Select(r => r.ToWire()));

    private static async Task Deny(HttpContext context, int status, string title, string detail)
    {
        if (status == 401) context.Response.Headers.WWWAuthenticate = "Bearer";
        await Results.Problem(detail, statusCode: status, title: title).ExecuteAsync(context);
    }
}

internal static class AccessControlExtensions
{
    public static TBuilder Requires<TBuilder>(this TBuilder builder, Access access) where TBuilder : IEndpointConventionBuilder =>
        builder.WithMetadata(new RequiresAccess(access));
}
