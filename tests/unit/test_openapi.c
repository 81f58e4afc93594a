/* test_openapi.c - deploy/openapi.yaml lists exactly the routes the router
 * serves (api_routes()): every documented METHOD path is served, and every
 * served one is documented (test_api.c checks that each route api_routes()
 * names is served). The document itself is validated against the
 * OpenAPI 3 schema in tests/e2e/service.sh. Runs from the source tree. */
#include <ctype.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <yaml.h>
#include <cmocka.h>

#include "vcpud/api.h"
#include "vcpud/util.h"

static yaml_node_t *map_get(yaml_document_t *d, yaml_node_t *map, const char *key)
{
	if (!map || map->type != YAML_MAPPING_NODE)
		return NULL;
	for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top;
	     p++) {
		yaml_node_t *k = yaml_document_get_node(d, p->key);
		if (k && k->type == YAML_SCALAR_NODE && strcmp((char *)k->data.scalar.value, key) == 0)
			return yaml_document_get_node(d, p->value);
	}
	return NULL;
}

static const char *const methods[] = { "get", "put", "post", "delete", "options", "head",
				       "patch", "trace" };

static void test_routes_documented(void **state)
{
	(void)state;
	FILE *f = fopen("deploy/openapi.yaml", "r");
	assert_non_null(f);
	yaml_parser_t parser;
	yaml_document_t doc;
	assert_true(yaml_parser_initialize(&parser));
	yaml_parser_set_input_file(&parser, f);
	if (!yaml_parser_load(&parser, &doc))
		fail_msg("deploy/openapi.yaml:%zu: %s", parser.problem_mark.line + 1,
			 parser.problem ? parser.problem : "not YAML");
	yaml_node_t *paths = map_get(&doc, yaml_document_get_root_node(&doc), "paths");
	assert_non_null(paths);
	assert_int_equal(paths->type, YAML_MAPPING_NODE);

	struct api_route_info served[64];
	size_t n = api_routes(served, ARRAY_SIZE(served));
	assert_true(n > 0 && n <= ARRAY_SIZE(served));
	bool seen[64] = { false };
	size_t documented = 0;
	for (yaml_node_pair_t *p = paths->data.mapping.pairs.start; p < paths->data.mapping.pairs.top;
	     p++) {
		const char *path = (char *)yaml_document_get_node(&doc, p->key)->data.scalar.value;
		yaml_node_t *item = yaml_document_get_node(&doc, p->value);
		for (size_t m = 0; m < ARRAY_SIZE(methods); m++) {
			if (!map_get(&doc, item, methods[m]))
				continue;
			documented++;
			bool found = false;
			for (size_t i = 0; i < n; i++)
				if (strcasecmp(served[i].method, methods[m]) == 0 &&
				    strcmp(served[i].path, path) == 0) {
					found = seen[i] = true;
				}
			if (!found)
				fail_msg("deploy/openapi.yaml documents %s %s, which vcpud does not "
					 "serve", methods[m], path);
		}
	}
	for (size_t i = 0; i < n; i++)
		if (!seen[i])
			fail_msg("vcpud serves %s %s, which deploy/openapi.yaml does not document",
				 served[i].method, served[i].path);
	assert_int_equal(documented, n);
	yaml_document_delete(&doc);
	yaml_parser_delete(&parser);
	fclose(f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_routes_documented),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
