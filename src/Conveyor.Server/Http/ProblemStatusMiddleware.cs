namespace Conveyor.Server.Http;

/// <summary>
/// Gives an error answer that has no body (an unknown route's 404, a wrong method's 405) an
/// <c>application/problem+json</c> body, as <c>UseStatusCodePages</c> with problem details does. Written here because
/// that middleware sets a feature and fills a dictionary on every request, the successful ones included; this one
/// looks at the response only once the request is done.
/// </summary>
internal sealed class ProblemStatusMiddleware(RequestDelegate next, IProblemDetailsService problems)
{
    public Task InvokeAsync(HttpContext context)
    {
        var handled = next(context);
        if (!handled.IsCompletedSuccessfully) return AfterAsync(handled, context);
        return NeedsBody(context.Response) ? WriteAsync(context) : Task.CompletedTask;
    }

    private async Task AfterAsync(Task handled, HttpContext context)
    {
        await handled;
        if (NeedsBody(context.Response)) await WriteAsync(context);
    }

    private static bool NeedsBody(HttpResponse response) =>
        response.StatusCode is >= 400 and < 600 && !response.HasStarted && response.ContentLength is null
        && string.IsNullOrEmpty(response.ContentType);

    private async Task WriteAsync(HttpContext context)
    {
        var status = context.Response.StatusCode;
        if (await problems.TryWriteAsync(new ProblemDetailsContext { HttpContext = context, ProblemDetails = { Status = status } })) return;
        context.Response.ContentType = "text/plain";
        await context.Response.WriteAsync($"Status code {status}.");
    }
}
