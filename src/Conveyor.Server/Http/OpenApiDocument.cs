using Microsoft.AspNetCore.OpenApi;
using Microsoft.OpenApi;

namespace Conveyor.Server.Http;

/// <summary>Title, description and the bearer API-key scheme of <c>/openapi/v1.json</c>.</summary>
internal static class OpenApiDocument
{
    public static void Configure(OpenApiOptions options) => options.AddDocumentTransformer((document, _, _) =>
    {
        document.Info = new OpenApiInfo
        {
            Title = "Conveyor",
            Version = "v1",
            Description = "A durable job queue. Every 4xx/5xx answer is application/problem+json with a detail sentence.",
        };
        document.Servers = [new OpenApiServer { Url = "http://127.0.0.1:5080", Description = "conveyor serve with its defaults" }];
        document.Tags = new HashSet<OpenApiTag>
        {
            new() { Name = "jobs", Description = "Enqueue, lease, finish and inspect jobs." },
            new() { Name = "queues", Description = "Queues, their counts, pause and resume; server stats." },
            new() { Name = "schedules", Description = "Cron schedules that enqueue a job at each occurrence." },
            new() { Name = "health", Description = "Liveness and readiness probes." },
        };
        document.Components ??= new OpenApiComponents();
        document.Components.SecuritySchemes ??= new Dictionary<string, IOpenApiSecurityScheme>();
        document.Components.SecuritySchemes["bearer"] = new OpenApiSecurityScheme
        {
            Type = SecuritySchemeType.Http,
            Scheme = "bearer",
            Description = "An API key (producer, consumer or admin role), when the server has keys configured.",
        };
        document.Security ??= [];
        document.Security.Add(new OpenApiSecurityRequirement { [new OpenApiSecuritySchemeReference("bearer", document)] = [] });
        return Task.CompletedTask;
    });
}
