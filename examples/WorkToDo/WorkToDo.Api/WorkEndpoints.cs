using System.Globalization;
using Conveyor.Client;
using WorkToDo.Core;

namespace WorkToDo.Api;

/// <summary>The routes. Every error is <c>application/problem+json</c> with a sentence saying what to fix.</summary>
internal static partial class WorkEndpoints
{
    public static void Map(WebApplication app)
    {
        app.MapPost("/work", CreateAsync);
        app.MapGet("/work/search", SearchAsync); // a literal segment: matched before /work/{id}
        app.MapGet("/work/{id}", GetAsync);
        app.MapGet("/healthz", () => TypedResults.Text("ok"));
    }

    /// <summary>
    /// Creates a work with a random add_up_to (1–99) and an <c>api-</c> code, then enqueues its compute job. The row is the
    /// source of truth: once it is committed the answer is 201, and if the enqueue fails the requeuer retries it later.
    /// </summary>
    private static async Task<IResult> CreateAsync(
        WorkStore store, WorkQueue queue, HttpResponse response, ILoggerFactory loggers, CancellationToken cancellationToken)
    {
        var work = await store.CreateApiWorkAsync(Arithmetic.RandomAddUpTo(), cancellationToken);
        try
        {
            // Not the request's token: a client that hangs up now should not leave its committed work to the requeuer.
            await queue.EnqueueAsync(work, CancellationToken.None);
        }
        catch (ConveyorException e)
        {
            LogEnqueueDeferred(loggers.CreateLogger("WorkToDo.Api"), work.Id, e.Message);
        }
        response.Headers.Location = $"/work/{work.Id}";
        return TypedResults.Json(work, WorkJson.Default.Work, statusCode: StatusCodes.Status201Created);
    }

    private static async Task<IResult> GetAsync(string id, WorkStore store, CancellationToken cancellationToken)
    {
        if (!long.TryParse(id, NumberStyles.None, CultureInfo.InvariantCulture, out var workId) || workId < 1)
            return Problem(StatusCodes.Status400BadRequest, "Invalid work id", $"The work id must be a positive whole number, not '{id}'.");
        var work = await store.GetAsync(workId, cancellationToken);
        if (work is null) return Problem(StatusCodes.Status404NotFound, "Work not found", $"Work {workId} was not found.");
        var events = await store.EventsAsync(work.WorkCode, cancellationToken);
        return TypedResults.Json(WorkDetail.From(work, events), WorkJson.Default.WorkDetail);
    }

    private static async Task<IResult> SearchAsync(HttpRequest request, WorkStore store, CancellationToken cancellationToken)
    {
        var query = request.Query;
        var window = Durations.DefaultSearchWindow;
        if (query["since"] is [var since] && !Durations.TryParse(since, out window))
            return Problem(StatusCodes.Status400BadRequest, "Invalid since", $"since must be {Durations.Expected}, not '{since}'.");
        var limit = 100;
        if (query["limit"] is [var limitText]
            && (!int.TryParse(limitText, NumberStyles.None, CultureInfo.InvariantCulture, out limit) || limit is < 1 or > WorkStore.MaxSearchResults))
            return Problem(StatusCodes.Status400BadRequest, "Invalid limit", $"limit must be a whole number from 1 to {WorkStore.MaxSearchResults}, not '{limitText}'.");
        if (query["since"].Count > 1 || query["work_code"].Count > 1 || query["limit"].Count > 1)
            return Problem(StatusCodes.Status400BadRequest, "Repeated parameter", "Give work_code, since and limit at most once each.");
        var works = await store.SearchAsync(query["work_code"].ToString(), window, limit, cancellationToken);
        return TypedResults.Json(works, WorkJson.Default.IReadOnlyListWork);
    }

    private static IResult Problem(int status, string title, string detail) =>
        TypedResults.Problem(detail: detail, statusCode: status, title: title);

    [LoggerMessage(1, LogLevel.Warning, "Work {WorkId} is saved but its job could not be enqueued now (the requeuer retries it): {Reason}")]
    private static partial void LogEnqueueDeferred(ILogger logger, long workId, string reason);
}
