namespace Conveyor.Server.Http;

/// <summary>Every 4xx answer in one place: application/problem+json with a sentence that says what to fix.</summary>
internal static class Problems
{
    public static IResult BadRequest(string detail) => Results.Problem(detail, statusCode: 400, title: "Bad request");
    public static IResult NotFound(string detail) => Results.Problem(detail, statusCode: 404, title: "Not found");
    public static IResult Conflict(string detail) => Results.Problem(detail, statusCode: 409, title: "Conflict");
    public static IResult TooLarge(string detail) => Results.Problem(detail, statusCode: 413, title: "Payload too large");
    public static IResult UnsupportedMediaType(string detail) => Results.Problem(detail, statusCode: 415, title: "Unsupported media type");
    public static IResult Unavailable(string detail) => Results.Problem(detail, statusCode: 503, title: "Service unavailable");

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
