namespace Conveyor.Server.Http;

/// <summary>Every 4xx answer in one place: application/problem+json with a sentence that says what to fix.</summary>
internal static class Problems
{
    public static IResult BadRequest(string detail) => Of(400, detail);
    public static IResult NotFound(string detail) => Of(404, detail);
    public static IResult Conflict(string detail) => Of(409, detail);
    public static IResult TooLarge(string detail) => Of(413, detail);
    public static IResult UnsupportedMediaType(string detail) => Of(415, detail);
    public static IResult Unavailable(string detail) => Of(503, detail);

    /// <summary>The sentence for a store that could not be reached, on every transport.</summary>
    public static string UnavailableDetail(StoreUnavailableException e) => $"{e.Message} Nothing was changed; retry later.";

    public static IResult Of(int status, string detail) => Results.Problem(detail, statusCode: status, title: Title(status));

    public static string Title(int status) => status switch
    {
        400 => "Bad request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not found",
        409 => "Conflict",
        413 => "Payload too large",
        415 => "Unsupported media type",
        503 => "Service unavailable",
        _ => "Error",
    };

    public static IResult From(JobOutcome outcome) => outcome.Status switch
    {
        OutcomeStatus.NotFound => NotFound(outcome.Detail ?? $"Job {outcome.Id} was not found."),
        _ => Conflict(outcome.Detail ?? $"Job {outcome.Id} is not in a state that allows this."),
    };

    public static int StatusCode(JobOutcome outcome) => outcome.Status switch
    {
        OutcomeStatus.Ok => 200,
        OutcomeStatus.NotFound => 404,
        _ => 409,
    };
}
