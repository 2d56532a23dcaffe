"""The JSON schemas test_structured.py sends as `response_format: json_schema` (issue 18).

Each entry is (name, prompt, schema). The shapes are varied on purpose — nested objects, arrays
with minItems/maxItems, enum, const, anyOf, $defs/$ref (one recursive), strings with
minLength/maxLength/pattern, integer and number bounds, booleans, null and nullable types,
optional properties — and the prompts are realistic requests whose answers are short, so 30+
schemas × (greedy, sampled) stay quick on 2 CPU cores with a 0.5B model. Free-text strings mostly
carry a maxLength so a sampled answer cannot ramble past max_tokens.

Data only: imported by test_structured.py, which checks each schema itself with
jsonschema's Draft202012Validator.check_schema before sending it.
"""

NAME = {"type": "string", "minLength": 1, "maxLength": 40}

SCHEMAS = [
    ("person", "Describe a fictional person: their name and age.",
     {"type": "object", "properties": {"name": NAME, "age": {"type": "integer", "minimum": 0, "maximum": 120}},
      "required": ["name", "age"], "additionalProperties": False}),

    ("boolean_answer", "Is Paris the capital of France? Answer in JSON.",
     {"type": "object", "properties": {"answer": {"type": "boolean"}}, "required": ["answer"], "additionalProperties": False}),

    ("sentiment_enum", "Classify the sentiment of this review: 'The battery died after two days. Terrible.'",
     {"type": "object", "properties": {"sentiment": {"type": "string", "enum": ["positive", "negative", "neutral"]}},
      "required": ["sentiment"], "additionalProperties": False}),

    ("const_version", "Return the API version object for this client.",
     {"type": "object", "properties": {"api": {"const": "v1"}, "ok": {"type": "boolean"}},
      "required": ["api", "ok"], "additionalProperties": False}),

    ("rgb_color", "Give the RGB components of the color orange.",
     {"type": "object", "properties": {c: {"type": "integer", "minimum": 0, "maximum": 255} for c in ("r", "g", "b")},
      "required": ["r", "g", "b"], "additionalProperties": False}),

    ("tags_array", "Suggest tags for a blog post about baking sourdough bread.",
     {"type": "object", "properties": {"tags": {"type": "array", "items": {"type": "string", "minLength": 2, "maxLength": 20},
                                                 "minItems": 2, "maxItems": 4}},
      "required": ["tags"], "additionalProperties": False}),

    ("top_array", "List three prime numbers below 20 as a JSON array.",
     {"type": "array", "items": {"type": "integer", "minimum": 2, "maximum": 19}, "minItems": 3, "maxItems": 3}),

    ("address_nested", "Give the postal address of a small bakery in Lyon, France.",
     {"type": "object", "properties": {
         "name": NAME,
         "address": {"type": "object", "properties": {
             "street": {"type": "string", "maxLength": 40}, "city": {"type": "string", "maxLength": 30},
             "postcode": {"type": "string", "pattern": "^[0-9]{5}$"}},
             "required": ["street", "city", "postcode"], "additionalProperties": False}},
      "required": ["name", "address"], "additionalProperties": False}),

    ("zip_pattern", "What is a valid US ZIP code for Manhattan, New York?",
     {"type": "object", "properties": {"zip": {"type": "string", "pattern": "^[0-9]{5}$"}}, "required": ["zip"],
      "additionalProperties": False}),

    ("iso_date_pattern", "On what date did the Apollo 11 landing happen? Use YYYY-MM-DD.",
     {"type": "object", "properties": {"date": {"type": "string", "pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2}$"}},
      "required": ["date"], "additionalProperties": False}),

    ("string_lengths", "Write a product title and a one-sentence summary for noise-cancelling headphones.",
     {"type": "object", "properties": {"title": {"type": "string", "minLength": 5, "maxLength": 30},
                                       "summary": {"type": "string", "minLength": 10, "maxLength": 80}},
      "required": ["title", "summary"], "additionalProperties": False}),

    ("nullable_type_list", "Give the middle name of Barack Obama, or null if you do not know it.",
     {"type": "object", "properties": {"first": NAME, "middle": {"type": ["string", "null"], "maxLength": 30}},
      "required": ["first", "middle"], "additionalProperties": False}),

    ("nullable_anyof", "A user profile for someone who has not set a nickname.",
     {"type": "object", "properties": {"username": NAME,
                                       "nickname": {"anyOf": [{"type": "string", "maxLength": 20}, {"type": "null"}]}},
      "required": ["username", "nickname"], "additionalProperties": False}),

    ("null_only", "Return an object whose field 'deleted_at' is null because the record is active.",
     {"type": "object", "properties": {"deleted_at": {"type": "null"}, "active": {"type": "boolean"}},
      "required": ["deleted_at", "active"], "additionalProperties": False}),

    ("optional_props", "Describe a book: its title, and optionally its author and year.",
     {"type": "object", "properties": {"title": {"type": "string", "maxLength": 50}, "author": NAME,
                                       "year": {"type": "integer", "minimum": 1400, "maximum": 2030}},
      "required": ["title"], "additionalProperties": False}),

    ("number_bounds", "What is the temperature in degrees Celsius at which water boils at sea level, and the humidity of a desert (0 to 1)?",
     {"type": "object", "properties": {"boiling_c": {"type": "number", "minimum": 0, "maximum": 200},
                                       "humidity": {"type": "number", "minimum": 0, "maximum": 1}},
      "required": ["boiling_c", "humidity"], "additionalProperties": False}),

    ("exclusive_bounds", "Rate this movie on a scale strictly between 0 and 10: 'The Matrix'.",
     {"type": "object", "properties": {"rating": {"type": "integer", "exclusiveMinimum": 0, "exclusiveMaximum": 10}},
      "required": ["rating"], "additionalProperties": False}),

    ("anyof_shapes", "Give the shape of a standard A4 sheet of paper.",
     {"type": "object", "properties": {"shape": {"anyOf": [
         {"type": "object", "properties": {"kind": {"const": "circle"}, "radius": {"type": "number", "minimum": 0}},
          "required": ["kind", "radius"], "additionalProperties": False},
         {"type": "object", "properties": {"kind": {"const": "rectangle"}, "width": {"type": "number", "minimum": 0},
                                           "height": {"type": "number", "minimum": 0}},
          "required": ["kind", "width", "height"], "additionalProperties": False}]}},
      "required": ["shape"], "additionalProperties": False}),

    ("anyof_scalar", "How many legs does a spider have? Answer with a number or the word 'unknown'.",
     {"type": "object", "properties": {"legs": {"anyOf": [{"type": "integer", "minimum": 0, "maximum": 100},
                                                          {"type": "string", "enum": ["unknown"]}]}},
      "required": ["legs"], "additionalProperties": False}),

    ("defs_ref", "A flight from Paris to Tokyo: departure and arrival airports.",
     {"$defs": {"airport": {"type": "object", "properties": {"code": {"type": "string", "pattern": "^[A-Z]{3}$"},
                                                             "city": {"type": "string", "maxLength": 30}},
                            "required": ["code", "city"], "additionalProperties": False}},
      "type": "object", "properties": {"from": {"$ref": "#/$defs/airport"}, "to": {"$ref": "#/$defs/airport"}},
      "required": ["from", "to"], "additionalProperties": False}),

    ("recursive_tree", "Represent a tiny folder tree: a root folder 'src' containing a folder 'lib'.",
     {"$defs": {"node": {"type": "object", "properties": {
         "name": {"type": "string", "minLength": 1, "maxLength": 20},
         "children": {"type": "array", "items": {"$ref": "#/$defs/node"}, "maxItems": 2}},
         "required": ["name", "children"], "additionalProperties": False}},
      "$ref": "#/$defs/node"}),

    ("recursive_linked_list", "Encode the list 1 -> 2 as a linked list where 'next' is null at the end.",
     {"$defs": {"cell": {"type": "object", "properties": {
         "value": {"type": "integer", "minimum": 0, "maximum": 9},
         "next": {"anyOf": [{"$ref": "#/$defs/cell"}, {"type": "null"}]}},
         "required": ["value", "next"], "additionalProperties": False}},
      "$ref": "#/$defs/cell"}),

    ("array_of_objects", "List two planets with their number of moons.",
     {"type": "object", "properties": {"planets": {"type": "array", "minItems": 2, "maxItems": 2, "items": {
         "type": "object", "properties": {"name": {"type": "string", "maxLength": 20},
                                          "moons": {"type": "integer", "minimum": 0, "maximum": 200}},
         "required": ["name", "moons"], "additionalProperties": False}}},
      "required": ["planets"], "additionalProperties": False}),

    ("enum_array", "Which days of the week are weekend days?",
     {"type": "object", "properties": {"days": {"type": "array", "minItems": 1, "maxItems": 2, "items": {
         "type": "string", "enum": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]}}},
      "required": ["days"], "additionalProperties": False}),

    ("enum_mixed", "What HTTP status code means 'Not Found'?",
     {"type": "object", "properties": {"status": {"enum": [200, 301, 404, 500]}, "retry": {"type": "boolean"}},
      "required": ["status", "retry"], "additionalProperties": False}),

    ("deep_nesting", "Describe the CEO of a small company named Acme.",
     {"type": "object", "properties": {"company": {"type": "object", "properties": {
         "name": {"type": "string", "maxLength": 20},
         "ceo": {"type": "object", "properties": {
             "name": NAME,
             "contact": {"type": "object", "properties": {"email": {"type": "string", "pattern": "^[a-z]+@[a-z]+\\.com$"}},
                         "required": ["email"], "additionalProperties": False}},
             "required": ["name", "contact"], "additionalProperties": False}},
         "required": ["name", "ceo"], "additionalProperties": False}},
      "required": ["company"], "additionalProperties": False}),

    ("matrix", "Give the 2x2 identity matrix.",
     {"type": "object", "properties": {"rows": {"type": "array", "minItems": 2, "maxItems": 2, "items": {
         "type": "array", "minItems": 2, "maxItems": 2, "items": {"type": "integer", "minimum": 0, "maximum": 1}}}},
      "required": ["rows"], "additionalProperties": False}),

    ("calendar_event", "Create a calendar event for a team meeting at 14:30 lasting 45 minutes.",
     {"type": "object", "properties": {
         "title": {"type": "string", "maxLength": 30}, "time": {"type": "string", "pattern": "^[0-2][0-9]:[0-5][0-9]$"},
         "duration_min": {"type": "integer", "minimum": 5, "maximum": 480}, "online": {"type": "boolean"}},
      "required": ["title", "time", "duration_min", "online"], "additionalProperties": False}),

    ("sql_query", "Write a SQL query that counts the rows of the table users.",
     {"type": "object", "properties": {"query": {"type": "string", "minLength": 10, "maxLength": 80},
                                       "dialect": {"type": "string", "enum": ["sqlite", "postgres", "mysql"]}},
      "required": ["query", "dialect"], "additionalProperties": False}),

    ("code_review", "Review this Python line: `x = eval(input())`. Is it safe?",
     {"type": "object", "properties": {"safe": {"type": "boolean"},
                                       "severity": {"type": "string", "enum": ["low", "medium", "high"]},
                                       "reason": {"type": "string", "maxLength": 80}},
      "required": ["safe", "severity", "reason"], "additionalProperties": False}),

    ("invoice_line_items", "An invoice with one line item: 2 notebooks at 3.50 each.",
     {"type": "object", "properties": {"currency": {"type": "string", "enum": ["USD", "EUR", "GBP"]},
                                       "items": {"type": "array", "minItems": 1, "maxItems": 3, "items": {
                                           "type": "object", "properties": {
                                               "product": {"type": "string", "maxLength": 20},
                                               "qty": {"type": "integer", "minimum": 1, "maximum": 99},
                                               "unit_price": {"type": "number", "minimum": 0, "maximum": 1000}},
                                           "required": ["product", "qty", "unit_price"], "additionalProperties": False}}},
      "required": ["currency", "items"], "additionalProperties": False}),

    ("status_union", "Report the result of a job that failed with error code 3.",
     {"type": "object", "properties": {"result": {"anyOf": [
         {"type": "object", "properties": {"ok": {"const": True}, "output": {"type": "string", "maxLength": 30}},
          "required": ["ok", "output"], "additionalProperties": False},
         {"type": "object", "properties": {"ok": {"const": False}, "code": {"type": "integer", "minimum": 1, "maximum": 255}},
          "required": ["ok", "code"], "additionalProperties": False}]}},
      "required": ["result"], "additionalProperties": False}),

    ("bare_string", "What is the chemical symbol of gold? Answer with a JSON string.",
     {"type": "string", "minLength": 1, "maxLength": 3}),

    ("bare_integer", "How many continents are there? Answer with a JSON number.",
     {"type": "integer", "minimum": 1, "maximum": 10}),

    ("defs_enum_ref", "Set the log level of a web server to warnings and above.",
     {"$defs": {"level": {"type": "string", "enum": ["debug", "info", "warning", "error"]}},
      "type": "object", "properties": {"level": {"$ref": "#/$defs/level"}, "service": {"type": "string", "maxLength": 20}},
      "required": ["level", "service"], "additionalProperties": False}),
]
